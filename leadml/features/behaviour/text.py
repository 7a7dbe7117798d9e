"""Names and sentences of the behaviour features.

Column names follow DESIGN.md (``page_view[pricing]__count_30d``); every column also gets a
:class:`FeatureInfo` whose template is a sentence a sales manager reads ("Viewed the pricing page
{value} times in the last 30 days"). Known event types have hand-written phrases; any other type
gets a plain generic one, so new event types never break explanations.
"""

from __future__ import annotations

from typing import Final

from leadml.features.metadata import FeatureGroup, FeatureInfo

GROUP: Final[FeatureGroup] = "behaviour"

# event type -> (what the lead did, said with "{value} times"; the noun for "No ... for N days")
EVENT_PHRASES: dict[str, tuple[str, str]] = {
    "page_view": ("Viewed pages on the site {value} times", "page view"),
    "site_visit": ("Visited the site {value} times", "site visit"),
    "email_open": ("Opened marketing e-mails {value} times", "e-mail opened"),
    "email_click": ("Clicked a link in an e-mail {value} times", "e-mail click"),
    "email_unsubscribe": ("Unsubscribed from e-mails {value} times", "unsubscribe"),
    "form_submit": ("Filled in a form {value} times", "form filled in"),
    "demo_request": ("Requested a demo {value} times", "demo request"),
    "contact_sales": ("Asked to talk to sales {value} times", "request to talk to sales"),
    "pricing_view": ("Looked at pricing {value} times", "look at pricing"),
    "webinar_register": ("Registered for a webinar {value} times", "webinar registration"),
    "webinar_attend": ("Attended a webinar {value} times", "webinar attended"),
    "download": ("Downloaded content {value} times", "download"),
    "content_download": ("Downloaded content {value} times", "download"),
    "community_join": ("Joined the community chat {value} times", "community join"),
    "community_post": ("Posted in the community {value} times", "community post"),
    "trial_start": ("Started a free trial {value} times", "trial start"),
    "trial_login": ("Logged in to the trial {value} times", "trial login"),
    "product_login": ("Logged in to the product {value} times", "product login"),
    "product_usage": ("Used the product {value} times", "product use"),
    "feature_use": ("Used a product feature {value} times", "product feature use"),
    "chat": ("Chatted with the team {value} times", "chat"),
    "chat_message": ("Sent a chat message {value} times", "chat message"),
    "meeting": ("Had a meeting with sales {value} times", "meeting"),
    "call": ("Had a call with sales {value} times", "call"),
    "event_attend": ("Attended an event {value} times", "event attended"),
    "trial_signup": ("Signed up for a free trial {value} times", "trial sign-up"),
    "product_active_day": ("Used the product on {value} days", "day of product use"),
    "unsubscribe": ("Unsubscribed from e-mails {value} times", "unsubscribe"),
    "review_comment": ("Wrote a review or comment {value} times", "review or comment"),
    "ad_click": ("Clicked an ad {value} times", "ad click"),
    "social_click": ("Clicked a social media post {value} times", "social media click"),
}

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


def window_label(days: float) -> str:
    """``30`` -> ``"30"``, ``0.5`` -> ``"0.5"`` (the number in a column name and a sentence)."""
    return f"{float(days):g}"


def _safe(text: object) -> str:
    """A value shown inside a template: readable and with braces escaped for ``str.format``."""
    return str(text).replace("_", " ").replace("{", "{{").replace("}", "}}")


def _did(event_type: str) -> str:
    if event_type in EVENT_PHRASES:
        return EVENT_PHRASES[event_type][0]
    return f"Had {{value}} '{_safe(event_type)}' events"


def _noun(event_type: str) -> str:
    if event_type in EVENT_PHRASES:
        return EVENT_PHRASES[event_type][1]
    return f"'{_safe(event_type)}' event"


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
        template=f"Last {_noun(event_type)} {{value}} days ago",
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


def scenario_info(name: str, steps: int) -> FeatureInfo:
    return FeatureInfo(
        name=f"scenario[{name}]__steps",
        group=GROUP,
        source="events",
        template=f"Went through {{value}} of the {steps} steps of the '{_safe(name)}' path, in order",
    )


def lead_age_info() -> FeatureInfo:
    return FeatureInfo(
        name="lead__age_days",
        group=GROUP,
        source="created_at",
        template="Became a lead {value} days ago",
    )
