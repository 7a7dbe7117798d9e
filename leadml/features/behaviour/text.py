"""Names and sentences of the behaviour features.

Column names follow DESIGN.md (``page_view[pricing]__count_30d``); every column also gets a
:class:`FeatureInfo` whose template is a sentence a sales manager reads ("Viewed the pricing page
{value} times in the last 30 days"). Known event types have hand-written phrases; any other type
gets a plain generic one, so new event types never break explanations.

:func:`wording` reads a column's name back into its :class:`Wording`: the nouns and phrases reason
sentences are made of when a template alone would read wrong ("No pricing page visit in the last
30 days" for a count of 0, "Requested a demo 2 days ago" or "No demo request for 40 days" for a
recency, "Never requested a demo" when there was none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from leadml.features.metadata import FeatureGroup, FeatureInfo

GROUP: Final[FeatureGroup] = "behaviour"

# event type -> (what the lead did, said with "{value} times"; the noun for "No ... in the last 30
# days" and "No ... for 5 days"; the one time, said with "2 days ago" and "Never ...")
EVENT_PHRASES: dict[str, tuple[str, str, str]] = {
    "page_view": ("Viewed pages on the site {value} times", "page view", "Viewed a page on the site"),
    "site_visit": ("Visited the site {value} times", "site visit", "Visited the site"),
    "email_open": ("Opened marketing e-mails {value} times", "e-mail opened", "Opened a marketing e-mail"),
    "email_click": ("Clicked a link in an e-mail {value} times", "e-mail click", "Clicked a link in an e-mail"),
    "email_unsubscribe": ("Unsubscribed from e-mails {value} times", "unsubscribe", "Unsubscribed from e-mails"),
    "form_submit": ("Filled in a form {value} times", "form submitted", "Filled in a form"),
    "demo_request": ("Requested a demo {value} times", "demo request", "Requested a demo"),
    "contact_sales": ("Asked to talk to sales {value} times", "request to talk to sales", "Asked to talk to sales"),
    "pricing_view": ("Looked at pricing {value} times", "look at pricing", "Looked at pricing"),
    "webinar_register": ("Registered for a webinar {value} times", "webinar registration", "Registered for a webinar"),
    "webinar_attend": ("Attended a webinar {value} times", "webinar attended", "Attended a webinar"),
    "download": ("Downloaded content {value} times", "download", "Downloaded content"),
    "content_download": ("Downloaded content {value} times", "download", "Downloaded content"),
    "community_join": ("Joined the community chat {value} times", "community join", "Joined the community chat"),
    "community_post": ("Posted in the community {value} times", "community post", "Posted in the community"),
    "trial_start": ("Started a free trial {value} times", "trial start", "Started a free trial"),
    "trial_login": ("Logged in to the trial {value} times", "trial login", "Logged in to the trial"),
    "product_login": ("Logged in to the product {value} times", "product login", "Logged in to the product"),
    "product_usage": ("Used the product {value} times", "product use", "Used the product"),
    "feature_use": ("Used a product feature {value} times", "product feature use", "Used a product feature"),
    "chat": ("Chatted with the team {value} times", "chat", "Chatted with the team"),
    "chat_message": ("Sent a chat message {value} times", "chat message", "Sent a chat message"),
    "meeting": ("Had a meeting with sales {value} times", "meeting", "Had a meeting with sales"),
    "call": ("Had a call with sales {value} times", "call", "Had a call with sales"),
    "event_attend": ("Attended an event {value} times", "event attended", "Attended an event"),
    "trial_signup": ("Signed up for a free trial {value} times", "trial sign-up", "Signed up for a free trial"),
    "product_active_day": ("Used the product on {value} days", "day of product use", "Used the product"),
    "unsubscribe": ("Unsubscribed from e-mails {value} times", "unsubscribe", "Unsubscribed from e-mails"),
    "review_comment": ("Wrote a review or comment {value} times", "review or comment", "Wrote a review or comment"),
    "ad_click": ("Clicked an ad {value} times", "ad click", "Clicked an ad"),
    "social_click": ("Clicked a social media post {value} times", "social media click", "Clicked a social media post"),
    "purchase": ("Made a purchase {value} times", "purchase", "Made a purchase"),
    "order": ("Placed an order {value} times", "order", "Placed an order"),
}

# event types that count against a lead: their recent occurrence lowers it, a long gap raises it
NEGATIVE_EVENTS: frozenset[str] = frozenset({"email_unsubscribe", "unsubscribe"})

# (event type, attribute column) -> what the lead did with that value ("{v}" is the value)
ATTRIBUTE_PHRASES: dict[tuple[str, str], str] = {
    ("page_view", "page"): "Viewed the {v} page {value} times",
    ("site_visit", "page"): "Visited the {v} page {value} times",
    ("download", "asset"): "Downloaded the {v} {value} times",
    ("content_download", "asset"): "Downloaded the {v} {value} times",
    ("email_open", "campaign"): "Opened e-mails of the {v} campaign {value} times",
    ("email_click", "campaign"): "Clicked e-mails of the {v} campaign {value} times",
    ("form_submit", "form"): "Filled in the {v} form {value} times",
    ("webinar_attend", "topic"): "Attended the {v} webinar {value} times",
    ("ad_click", "campaign"): "Clicked an ad of the {v} campaign {value} times",
}

# (event type, attribute column) -> the noun of one such event, for "No pricing page visit in the last 30 days"
ATTRIBUTE_NOUNS: dict[tuple[str, str], str] = {
    ("page_view", "page"): "{v} page visit",
    ("site_visit", "page"): "{v} page visit",
    ("download", "asset"): "download of the {v}",
    ("content_download", "asset"): "download of the {v}",
    ("email_open", "campaign"): "opened e-mail of the {v} campaign",
    ("email_click", "campaign"): "click in an e-mail of the {v} campaign",
    ("form_submit", "form"): "{v} form submitted",
    ("webinar_attend", "topic"): "{v} webinar attended",
    ("ad_click", "campaign"): "ad click of the {v} campaign",
}


# (event type, value column) -> (the quantity in words, one valued event): the sentences of
# ``features.event_values``; any other pair reads "Amount of purchases", "purchase with an amount"
VALUE_PHRASES: dict[tuple[str, str], tuple[str, str]] = {
    ("product_active_day", "minutes"): ("Minutes in the product", "day of product use"),
    ("product_usage", "minutes"): ("Minutes in the product", "product session"),
    ("purchase", "amount"): ("Amount spent on purchases", "purchase"),
    ("order", "amount"): ("Amount of orders", "order"),
    ("page_view", "seconds"): ("Seconds on the site's pages", "page view"),
    ("page_view", "duration"): ("Time on the site's pages", "page view"),
}
VALUE_STATS = ("sum", "mean", "max")
VALUE_WORDS = {"sum": "in total", "mean": "on average per {noun}", "max": "at most in one {noun}"}


def window_label(days: float) -> str:
    """``30`` -> ``"30"``, ``0.5`` -> ``"0.5"`` (the number in a column name and a sentence)."""
    return f"{float(days):g}"


def _plain(text: object) -> str:
    """A value shown inside a sentence: readable (``content_path`` -> ``content path``)."""
    return str(text).replace("_", " ")


def _braces(text: str) -> str:
    """Braces escaped for ``str.format``: text put into a template stays as it is."""
    return text.replace("{", "{{").replace("}", "}}")


def _safe(text: object) -> str:
    """A value shown inside a template: readable and with braces escaped for ``str.format``."""
    return _braces(_plain(text))


def _did(event_type: str) -> str:
    if event_type in EVENT_PHRASES:
        return EVENT_PHRASES[event_type][0]
    return f"Had {{value}} '{_safe(event_type)}' events"


def _noun(event_type: str) -> str:
    if event_type in EVENT_PHRASES:
        return EVENT_PHRASES[event_type][1]
    return f"'{_plain(event_type)}' event"


def _did_once(event_type: str) -> str:
    if event_type in EVENT_PHRASES:
        return EVENT_PHRASES[event_type][2]
    return f"Had an event of type '{_plain(event_type)}'"


def _attribute_noun(event_type: str, column: str, value: str) -> str:
    phrase = ATTRIBUTE_NOUNS.get((event_type, column))
    if phrase is not None:
        return phrase.replace("{v}", _plain(value))
    if event_type in EVENT_PHRASES:
        return f"{_noun(event_type)} ({_plain(column)}: {_plain(value)})"
    return f"'{_plain(event_type)}' event with {_plain(column)} '{_plain(value)}'"


def _in_window(days: float) -> str:
    return "in the last day" if float(days) == 1 else f"in the last {window_label(days)} days"


def type_count_info(event_type: str, days: float) -> FeatureInfo:
    return FeatureInfo(
        name=f"{event_type}__count_{window_label(days)}d",
        group=GROUP,
        source=event_type,
        window_days=int(days) if float(days).is_integer() else None,
        template=f"{_did(event_type)} {_in_window(days)}",
    )


def days_since_info(event_type: str) -> FeatureInfo:
    return FeatureInfo(
        name=f"{event_type}__days_since_last",
        group=GROUP,
        source=event_type,
        template=f"Last {_braces(_noun(event_type))} {{value}} days ago",
    )


def attribute_count_info(event_type: str, column: str, value: str, days: float) -> FeatureInfo:
    phrase = ATTRIBUTE_PHRASES.get((event_type, column))
    if phrase is not None:
        did = phrase.replace("{v}", _safe(value))
    elif event_type in EVENT_PHRASES:
        did = EVENT_PHRASES[event_type][0].replace(" {value} times", "")
        did = f"{did} ({_safe(column)}: {_safe(value)}) {{value}} times"
    else:
        did = f"Had {{value}} '{_safe(event_type)}' events with {_safe(column)} '{_safe(value)}'"
    return FeatureInfo(
        name=f"{event_type}[{value}]__count_{window_label(days)}d",
        group=GROUP,
        source=event_type,
        window_days=int(days) if float(days).is_integer() else None,
        template=f"{did} {_in_window(days)}",
        attribute=(column, str(value)),
    )


def _article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _value_words(event_type: str, column: str) -> tuple[str, str]:
    """(the quantity, one valued event) of an event type's value column, for sentences."""
    if (event_type, column) in VALUE_PHRASES:
        return VALUE_PHRASES[(event_type, column)]
    noun = _noun(event_type)
    quantity = _plain(column)
    return f"{quantity[:1].upper()}{quantity[1:]} of {noun}s", f"{noun} with {_article(_plain(column))}"


def value_info(event_type: str, column: str, stat: str, days: float) -> FeatureInfo:
    """``purchase.amount__sum_30d``: the sum (mean, max) of a numeric event column in a window."""
    quantity, one = _value_words(event_type, column)
    said = VALUE_WORDS[stat].replace("{noun}", one)
    return FeatureInfo(
        name=f"{event_type}.{column}__{stat}_{window_label(days)}d",
        group=GROUP,
        source=event_type,
        window_days=int(days) if float(days).is_integer() else None,
        template=f"{_braces(quantity)} {_in_window(days)}: {{value}} {_braces(said)}",
        attribute=(column, stat),
    )


def value_days_since_info(event_type: str, column: str) -> FeatureInfo:
    """``purchase.amount__days_since_last``: days since the last event of the type with a value."""
    _, one = _value_words(event_type, column)
    return FeatureInfo(
        name=f"{event_type}.{column}__days_since_last",
        group=GROUP,
        source=event_type,
        template=f"Last {_braces(one)} {{value}} days ago",
        attribute=(column, "days_since_last"),
    )


def events_count_info(days: float) -> FeatureInfo:
    return FeatureInfo(
        name=f"events__count_{window_label(days)}d",
        group=GROUP,
        source="events",
        window_days=int(days) if float(days).is_integer() else None,
        template=f"Interacted {{value}} times {_in_window(days)}",
    )


def active_days_info(days: float) -> FeatureInfo:
    return FeatureInfo(
        name=f"events__active_days_{window_label(days)}d",
        group=GROUP,
        source="events",
        window_days=int(days) if float(days).is_integer() else None,
        template=f"Active on {{value}} of the last {window_label(days)} days",
    )


def decayed_info(half_life: float) -> FeatureInfo:
    return FeatureInfo(
        name=f"events__decayed_{window_label(half_life)}d",
        group=GROUP,
        source="events",
        template=(f"Recent engagement {{value}} (every touch counts 1, halving every {window_label(half_life)} days)"),
    )


def velocity_info() -> FeatureInfo:
    return FeatureInfo(
        name="events__velocity_7d",
        group=GROUP,
        source="events",
        window_days=7,
        template="Touches in the last 7 days minus the 7 days before: {value}",
    )


PATH_WORDS = ("path", "journey", "scenario", "funnel", "track", "sequence", "route")


def path_noun(name: str) -> str:
    """A path's name as a sentence says it after "the": ``content_path`` -> ``content path``,
    ``Onboarding`` -> ``onboarding path`` (a name without a path word gets one)."""
    words = _plain(name).strip()
    if len(words) > 1 and words[0].isupper() and not words[1].isupper():
        words = words[0].lower() + words[1:]
    return words if words.lower().endswith(PATH_WORDS) else f"{words} path"


def scenario_info(name: str, steps: int) -> FeatureInfo:
    return FeatureInfo(
        name=f"scenario[{name}]__steps",
        group=GROUP,
        source="events",
        template=f"Completed {{value}} of {steps} steps of the {_braces(path_noun(name))}, in order",
    )


def lead_age_info() -> FeatureInfo:
    return FeatureInfo(
        name="lead__age_days",
        group=GROUP,
        source="created_at",
        template="Became a lead {value} days ago",
    )


# -- reading a name back into its words --------------------------------------------------------
Family = Literal["count", "days_since", "active_days", "decayed", "velocity", "scenario", "lead_age", "value"]
VALUE_NAME = re.compile(
    r"^(?P<event>.+)\.(?P<column>[^.]+)__(?:(?P<stat>sum|mean|max)_(?P<days>[0-9.]+)d|days_since_last)$"
)
COUNT_NAME = re.compile(r"^(?P<event>[^\[\]]+?)(?:\[(?P<value>.*)\])?__count_(?P<days>[0-9.]+)d$")
DAYS_SINCE_NAME = re.compile(r"^(?P<event>.+)__days_since_last$")
WINDOW_NAME = re.compile(r"^events__(?P<family>active_days|decayed)_(?P<days>[0-9.]+)d$")
SCENARIO_NAME = re.compile(r"^scenario\[(?P<name>.+)\]__steps$")
SCENARIO_STEPS = re.compile(r" of (\d+) steps ")


@dataclass(frozen=True)
class Wording:
    """The words of one behaviour feature: what its reason sentences are made of.

    Attributes:
        family: what the column measures (``count``, ``days_since``, ``active_days``, ``decayed``,
            ``velocity``, ``scenario``, ``lead_age``, ``value``: a sum, mean or max of event values).
        noun: one such event, for "No demo request in the last 30 days" and "No demo request for 5 days".
        did_once: the lead doing it once, for "Requested a demo 2 days ago".
        never: for a recency without any such event: "Never requested a demo".
        window: "in the last 30 days" (counts and active days).
        negative: the event counts against a lead (an unsubscribe): its recency reads the other way.
        half_life: the decay's half-life in days, as the name writes it.
        scenario / steps: the path's name as words and its number of steps (None when not known).
    """

    family: Family
    noun: str = ""
    did_once: str = ""
    never: str = ""
    window: str = ""
    negative: bool = False
    half_life: str = ""
    scenario: str = ""
    steps: int | None = None


def _never(did_once: str) -> str:
    return "Never " + did_once[:1].lower() + did_once[1:]


def _count_wording(info: FeatureInfo, event_type: str, value: str | None, days: str) -> Wording | None:
    window = _in_window(float(days))
    if value is None:
        noun = "activity" if event_type == "events" else _noun(event_type)
        return Wording("count", noun=noun, window=window)
    if info.attribute is None or info.attribute[1] != value:
        return None
    return Wording("count", noun=_attribute_noun(event_type, info.attribute[0], value), window=window)


def wording(info: FeatureInfo) -> Wording | None:
    """The words of a behaviour feature this module named, read back from its name; None for any
    other feature (profile fields, flat behaviour columns, hand-made infos), which keep their template.

    Example:
        >>> wording(days_since_info("demo_request")).never
        'Never requested a demo'
        >>> wording(attribute_count_info("page_view", "page", "pricing", 30)).noun
        'pricing page visit'
    """
    if info.group != "behaviour":
        return None
    name = info.name
    if (match := VALUE_NAME.match(name)) and info.attribute is not None:
        return _value_wording(info, match)
    if match := COUNT_NAME.match(name):
        event_type = match.group("event")
        if info.source != event_type:
            return None
        return _count_wording(info, event_type, match.group("value"), match.group("days"))
    if match := DAYS_SINCE_NAME.match(name):
        event_type = match.group("event")
        if info.source != event_type:
            return None
        if event_type == "events":
            return Wording("days_since", noun="activity", did_once="Last active", never="Never active")
        did_once = _did_once(event_type)
        return Wording(
            "days_since",
            noun=_noun(event_type),
            did_once=did_once,
            never=_never(did_once),
            negative=event_type in NEGATIVE_EVENTS,
        )
    if info.source == "events" and (match := WINDOW_NAME.match(name)):
        days = match.group("days")
        if match.group("family") == "active_days":
            return Wording("active_days", window=_in_window(float(days)))
        return Wording("decayed", half_life=days)
    if info.source == "events" and name == "events__velocity_7d":
        return Wording("velocity")
    if info.source == "events" and (match := SCENARIO_NAME.match(name)):
        steps = SCENARIO_STEPS.search(info.template)
        return Wording(
            "scenario", scenario=path_noun(match.group("name")), steps=int(steps.group(1)) if steps else None
        )
    if name == "lead__age_days" and info.source == "created_at":
        return Wording("lead_age")
    return None


def _value_wording(info: FeatureInfo, match: re.Match) -> Wording | None:
    """The words of an event value feature (``purchase.amount__sum_30d``), checked against its info."""
    event_type, column = match.group("event"), match.group("column")
    if info.source != event_type or info.attribute is None or info.attribute[0] != column:
        return None
    _, one = _value_words(event_type, column)
    if match.group("stat") is None:
        known = (event_type, column) in VALUE_PHRASES and event_type in EVENT_PHRASES
        did_once = _did_once(event_type) if known else f"Had {_article(one)}"
        return Wording("days_since", noun=one, did_once=did_once, never=_never(did_once))
    return Wording("value", noun=one, window=_in_window(float(match.group("days"))))
