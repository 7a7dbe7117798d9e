"""Outcome values as CRMs spell them, open deals (censored, not lost) and outcomes closed too early."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import LeadDataError
from leadml.data.columns import parse_outcomes
from leadml.data.contract import LeadDataWarning, load_leads, load_outcomes, validate_leads, validate_outcomes

HUBSPOT = {"won": ["closedwon"], "lost": ["closedlost"], "open": ["appointmentscheduled", "contractsent"]}
SALESFORCE = {"won": ["Closed Won"], "lost": ["Closed Lost"], "open": ["Prospecting", "Negotiation/Review"]}
PIPEDRIVE = {"open": ["open"]}


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def stages(values) -> pd.DataFrame:
    return pd.DataFrame({"lead_id": [f"L{i + 1}" for i in range(len(values))], "stage": values})


def labels_of(values, **maps) -> tuple[list[int], list[int], list[bool]]:
    frame = stages(values)
    label, is_open = parse_outcomes(frame, "stage", "deals.csv", **maps)
    return label.tolist(), label.index.tolist(), is_open.tolist()


@pytest.mark.parametrize(
    ("values", "maps"),
    [
        (["closedwon", "closedlost", "appointmentscheduled", " ClosedWon ", "CONTRACTSENT"], HUBSPOT),
        (["Closed Won", "Closed Lost", "Prospecting", "closed won", "Negotiation/Review"], SALESFORCE),
        (["won", "lost", "open", "Won", " OPEN"], PIPEDRIVE),
    ],
    ids=["hubspot", "salesforce", "pipedrive"],
)
def test_crm_spellings_with_maps(values, maps):
    assert labels_of(values, **maps) == ([1, 0, 1], [0, 1, 3], [False, False, True, False, True])


def test_without_maps_the_usual_values_apply():
    values = ["won", "lost", "Yes", "no", 1, 0, "TRUE", " false ", "converted"]
    assert labels_of(values)[0] == [1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert labels_of([1.0, 0.0, True])[0] == [1, 0, 1]


def test_a_map_replaces_the_defaults_of_its_side_only():
    # won given: 'won' and 'yes' no longer mean won; lost keeps its defaults
    with pytest.raises(LeadDataError, match=r"seen: won \(1 row\)"):
        labels_of(["closedwon", "no", "won"], won=["closedwon"])
    assert labels_of(["closedwon", "no", "lost"], won=["closedwon"])[0] == [1, 0, 0]
    # a value listed as open leaves the other side's defaults
    assert labels_of(["yes", "no"], open=["no"]) == ([1], [0], [False, True])


def test_map_values_may_be_numbers_or_one_word():
    assert labels_of([1, 2, 3], won=[1], lost=["2"], open=3)[0] == [1, 0]
    assert labels_of([1.0, 0.0], won=[1.0], lost=[0])[0] == [1, 0]


def test_unknown_values_raise_once_listing_values_counts_and_keys():
    values = ["closedwon", "qualifiedtobuy", "closedlost", "qualifiedtobuy", None, "presentationscheduled"]
    message = (
        "deals.csv: column 'stage' has 6 values that are not a binary outcome (1 missing; seen: "
        "qualifiedtobuy (2 rows), closedwon (1 row), closedlost (1 row), presentationscheduled (1 row); "
        "first rows: row 1 (lead_id='L1', stage='closedwon'); row 2 (lead_id='L2', stage='qualifiedtobuy'); "
        "row 3 (lead_id='L3', stage='closedlost')); use won/lost, yes/no, true/false or 1/0, or list your "
        "CRM's values in data.outcomes.won, data.outcomes.lost or data.outcomes.open (deals still in "
        "progress, kept open), e.g. won: [closedwon], lost: [closedlost]"
    )
    with pytest.raises(LeadDataError, match=exactly(message)):
        labels_of(values)


def test_unknown_values_with_maps_show_the_maps():
    values = ["closedwon", "qualifiedtobuy", "closedlost", "qualifiedtobuy"]
    message = (
        "deals.csv: column 'stage' has 2 values that are not a binary outcome (0 missing; seen: "
        "qualifiedtobuy (2 rows); first rows: row 2 (lead_id='L2', stage='qualifiedtobuy'); "
        "row 4 (lead_id='L4', stage='qualifiedtobuy')); the maps read won: closedwon; lost: closedlost; "
        "open: appointmentscheduled, contractsent: add each value seen to data.outcomes.won, "
        "data.outcomes.lost or data.outcomes.open (deals still in progress, kept open)"
    )
    with pytest.raises(LeadDataError, match=exactly(message)):
        labels_of(values, **HUBSPOT)


def test_many_unknown_values_are_cut_short():
    values = [f"stage {i}" for i in range(9)]
    with pytest.raises(LeadDataError, match=re.escape("stage 5 (1 row), 3 more; first rows")):
        labels_of(values, open=["open"])


def test_one_value_in_two_maps_is_refused():
    with pytest.raises(
        LeadDataError,
        match=exactly(
            "deals.csv: outcome value(s) 'done' are in both data.outcomes.won and data.outcomes.open; "
            "keep each value in one list"
        ),
    ):
        labels_of(["done"], won=["Done"], open=[" done"])


# ---------------------------------------------------------------- the outcomes table


@pytest.fixture
def leads() -> pd.DataFrame:
    frame = pd.DataFrame({"lead_id": ["L1", "L2", "L3", "L4", "L5"], "created_at": "2024-01-10"})
    return validate_leads(frame)


def deals(**overrides) -> pd.DataFrame:
    base = {
        "lead_id": ["L1", "L2", "L3", "L4", "L5"],
        "outcome": ["closedwon", "appointmentscheduled", "closedlost", "contractsent", "closedwon"],
        "closed_at": ["2024-02-01", None, "2024-03-01", "2024-09-30", "2024-04-01"],
    }
    return pd.DataFrame({**base, **overrides})


def test_open_deals_are_left_out_and_counted(leads):
    message = (
        "<outcomes table>: column 'outcome' has 2 open deals (appointmentscheduled (1 row), contractsent "
        "(1 row)); they are not outcomes yet and are left out, so their leads stay open (censored, not lost)"
    )
    with pytest.warns(LeadDataWarning, match=exactly(message)) as caught:
        outcomes = validate_outcomes(deals(), leads=leads, **HUBSPOT)
    assert len([w for w in caught if w.category is LeadDataWarning]) == 1
    assert outcomes["lead_id"].tolist() == ["L1", "L3", "L5"]
    assert outcomes["outcome"].tolist() == [1, 0, 1] and outcomes["outcome"].dtype == np.int8
    assert str(outcomes["closed_at"].dtype) == "datetime64[ns, UTC]" and outcomes["closed_at"].notna().all()
    with pytest.warns(LeadDataWarning, match="has 2 open deals"):
        assert validate_outcomes(deals(), **HUBSPOT)["lead_id"].tolist() == ["L1", "L3", "L5"]  # without leads too


def test_open_deals_of_unknown_leads_are_no_error_but_closed_ones_are(leads):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeadDataWarning)
        outcomes = validate_outcomes(deals(lead_id=["L1", "X9", "L3", "L4", "L5"]), leads=leads, **HUBSPOT)
    assert outcomes["lead_id"].tolist() == ["L1", "L3", "L5"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeadDataWarning)
        with pytest.raises(
            LeadDataError, match=re.escape("has 1 outcomes of unknown leads (first rows: row 3 (lead_id='X9'")
        ):
            validate_outcomes(deals(lead_id=["L1", "L2", "X9", "L4", "L5"]), leads=leads, **HUBSPOT)


def test_a_closed_deal_still_needs_its_close_date():
    with pytest.raises(
        LeadDataError, match=re.escape("column 'closed_at' has 1 missing timestamps (first rows: row 3")
    ):
        validate_outcomes(deals(closed_at=["2024-02-01", None, None, None, "2024-04-01"]), **HUBSPOT)


def test_early_outcomes_raise_by_default(leads):
    frame = deals(closed_at=["2024-02-01", None, "2024-01-09T23:00:00Z", None, "2023-12-01"])
    message = (
        "<outcomes table>: column 'closed_at' has 2 outcomes closed before the lead was created (first rows: "
        "row 3 (lead_id='L3', closed_at=2024-01-09T23:00:00+00:00); row 5 (lead_id='L5', "
        "closed_at=2023-12-01T00:00:00+00:00)); fix the export or drop them with on_early_outcomes='drop' "
        "(pipeline: data.on_early_outcomes: drop)"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeadDataWarning)
        with pytest.raises(LeadDataError, match=exactly(message)):
            validate_outcomes(frame, leads=leads, **HUBSPOT)


def test_early_outcomes_dropped_and_counted(leads):
    frame = deals(closed_at=["2024-02-01", None, "2024-01-09T23:00:00Z", None, "2023-12-01"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = validate_outcomes(frame, leads=leads, on_early_outcomes="drop", **HUBSPOT)
    messages = [str(w.message) for w in caught if w.category is LeadDataWarning]
    assert len(messages) == 2 and "has 2 open deals" in messages[0]
    assert messages[1] == (
        "<outcomes table>: dropped 2 outcomes closed before the lead was created (column 'closed_at'; first "
        "rows: row 3 (lead_id='L3', closed_at=2024-01-09T23:00:00+00:00); row 5 (lead_id='L5', "
        "closed_at=2023-12-01T00:00:00+00:00))"
    )
    assert outcomes["lead_id"].tolist() == ["L1"]


def test_early_outcome_policy_must_be_known():
    with pytest.raises(ValueError, match="on_early_outcomes must be 'error' or 'drop', not 'keep'"):
        validate_outcomes(deals(), on_early_outcomes="keep")  # type: ignore[arg-type]


def test_without_maps_or_leads_nothing_changes():
    frame = pd.DataFrame({"lead_id": ["a", "b"], "outcome": ["won", "no"], "closed_at": ["2024-01-01", "2024-01-02"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        outcomes = validate_outcomes(frame)
    assert outcomes["outcome"].tolist() == [1, 0] and len(outcomes) == 2


def test_a_hubspot_export_loads_as_it_is(tmp_path):
    contacts = tmp_path / "contacts.csv"
    contacts.write_bytes(
        (
            "Record ID;First Name;Company;Create Date\n"
            "101;Zoë;Société Générale;2024-01-10 09:30\n"
            '102;Jürgen;"Müller; Söhne";2024-01-11 10:00\n'
            "103;Inès;Crédit Agricole;2024-01-12 11:15\n"
        ).encode("latin-1")
    )
    deals_csv = tmp_path / "deals.csv"
    deals_csv.write_bytes(
        (
            "Deal Name;Associated Contact ID;Deal Stage;Close Date\n"
            '"Renouvellement\nannuel";101;closedwon;1709648520000\n'
            "Évaluation;102;qualifiedtobuy;\n"
            "Pilote;103;closedlost;1706745600000\n"
        ).encode("latin-1")
    )
    leads = load_leads(contacts, {"lead_id": "Record ID", "created_at": "Create Date"}, encoding="latin-1")
    assert leads["Company"].tolist() == ["Société Générale", "Müller; Söhne", "Crédit Agricole"]
    with pytest.warns(LeadDataWarning, match=re.escape("has 1 open deals (qualifiedtobuy (1 row))")):
        outcomes = load_outcomes(
            deals_csv,
            leads,
            {"lead_id": "Associated Contact ID", "outcome": "Deal Stage", "closed_at": "Close Date"},
            won=["closedwon"],
            lost=["closedlost"],
            open=["qualifiedtobuy"],
            encoding="latin-1",
        )
    assert outcomes["lead_id"].tolist() == ["101", "103"]
    assert outcomes["outcome"].tolist() == [1, 0]
    assert outcomes["closed_at"].tolist() == [
        pd.Timestamp("2024-03-05 14:22", tz="UTC"),
        pd.Timestamp("2024-02-01", tz="UTC"),
    ]
    assert outcomes["Deal Name"].iloc[0] == "Renouvellement\nannuel"


def test_only_missing_values_say_so():
    message = (
        "deals.csv: column 'stage' has 1 values that are not a binary outcome (1 missing; first rows: "
        "row 2 (lead_id='L2', stage=<missing>)); the maps read open: open: add each value seen to "
        "data.outcomes.won, data.outcomes.lost or data.outcomes.open (deals still in progress, kept open)"
    )
    with pytest.raises(LeadDataError, match=exactly(message)):
        labels_of(["won", None], **PIPEDRIVE)
