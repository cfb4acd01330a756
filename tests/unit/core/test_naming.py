"""Derived names: tasks, runs, refinement runs, branches."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agentfleet.core.naming import (
    MAX_NAME,
    REFINE_STAGE,
    branch_name,
    refinement_run_name,
    run_name,
    task_name,
    ticket_slug,
)

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
HASH_TAIL = re.compile(r"-[0-9a-f]{8}$")

LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
TICKET_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def is_label(name: str) -> bool:
    return len(name) <= MAX_NAME and DNS1123_LABEL.fullmatch(name) is not None


@st.composite
def labels(draw, min_size: int = 1, max_size: int = 63) -> str:
    """A DNS-1123 label, as batch, task and stage names are."""
    size = draw(st.integers(min_size, max_size))
    if size == 1:
        return draw(st.sampled_from(LABEL_CHARS))
    middle = draw(st.text(LABEL_CHARS + "-", min_size=size - 2, max_size=size - 2))
    return draw(st.sampled_from(LABEL_CHARS)) + middle + draw(st.sampled_from(LABEL_CHARS))


@st.composite
def ticket_ids(draw, min_size: int = 1, max_size: int = 63) -> str:
    """An id matching the TicketBatch ticket id pattern: [A-Za-z0-9][A-Za-z0-9._-]{0,62}."""
    size = draw(st.integers(min_size, max_size))
    rest = draw(st.text(TICKET_CHARS + "._-", min_size=size - 1, max_size=size - 1))
    return draw(st.sampled_from(TICKET_CHARS)) + rest


attempts = st.integers(min_value=1, max_value=10_000)


# Formats


def test_max_name_is_the_kubernetes_label_limit():
    assert MAX_NAME == 63


def test_task_name_is_batch_dash_ticket_slug():
    assert task_name("b1", "T-1") == "b1-t-1"
    assert task_name("sprint-42", "PROJ_12.fix") == "sprint-42-proj-12-fix"


def test_run_name_is_task_stage_attempt():
    assert run_name("b1-t-1", "implement", 1) == "b1-t-1-implement-1"
    assert run_name("b1-t-1", "review", 12) == "b1-t-1-review-12"


def test_refinement_run_name_is_a_run_of_the_refine_stage_owned_by_the_batch():
    assert REFINE_STAGE == "refine"
    assert refinement_run_name("b1", 2) == "b1-refine-2"
    assert refinement_run_name("b1", 2) == run_name("b1", "refine", 2)


def test_branch_name_is_namespaced_by_batch():
    assert branch_name("b1", "b1-t-1") == "agentfleet/b1/b1-t-1"


@pytest.mark.parametrize(
    ("ticket_id", "slug"),
    [
        ("T-1", "t-1"),
        ("ABC", "abc"),
        ("a_b.c", "a-b-c"),
        ("a__..b", "a-b"),  # runs of invalid characters become one dash
        ("x.", "x"),  # no trailing dash
        ("already-ok-9", "already-ok-9"),
    ],
)
def test_ticket_slug_lowercases_and_dashes_everything_else(ticket_id, slug):
    assert ticket_slug(ticket_id) == slug


def test_ticket_slug_of_an_id_with_no_usable_character_is_a_hash():
    slug = ticket_slug("___")
    assert re.fullmatch(r"[0-9a-f]{8}", slug)
    assert slug == ticket_slug("___")
    assert slug != ticket_slug("..")


def test_ticket_ids_differing_only_in_case_or_punctuation_share_a_short_task_name():
    # Documented collision: TicketBatchSpec.check_task_names refuses such batches.
    assert task_name("b1", "T_1") == task_name("b1", "t-1") == "b1-t-1"


# Shortening


def test_a_name_of_exactly_63_characters_is_kept_as_is():
    batch = "b" * 59
    assert task_name(batch, "T-1") == f"{batch}-t-1"
    assert len(task_name(batch, "T-1")) == 63


def test_a_long_task_name_is_shortened_with_a_hash_to_63_characters():
    name = task_name("b" * 60, "T-1")
    assert len(name) == 63
    assert HASH_TAIL.search(name)
    assert name.startswith("b" * 54 + "-")
    assert is_label(name)


def test_shortening_drops_a_dash_left_at_the_cut():
    batch = "b" * 53 + "-" + "c" * 20  # the 54-character cut ends on the dash
    name = task_name(batch, "T-1")
    assert "--" not in name
    assert name == "b" * 53 + name[53:]
    assert is_label(name)


def test_a_long_run_name_keeps_its_stage_and_attempt():
    owner = "o" * 63
    name = run_name(owner, "implement", 3)
    assert len(name) == 63
    assert name.endswith("-implement-3")
    assert HASH_TAIL.search(name.removesuffix("-implement-3"))
    assert is_label(name)


def test_long_refinement_run_name_fits():
    name = refinement_run_name("b" * 63, 1)
    assert len(name) <= MAX_NAME
    assert name.endswith("-refine-1")


def test_shortened_names_are_deterministic():
    assert task_name("b" * 60, "T-1") == task_name("b" * 60, "T-1")
    assert run_name("o" * 63, "test", 1) == run_name("o" * 63, "test", 1)


def test_shortened_names_of_different_tickets_differ():
    batch = "b" * 60
    assert task_name(batch, "T-1") != task_name(batch, "T-2")
    assert task_name(batch, "T_1") != task_name(batch, "t-1")


def test_shortened_run_names_of_different_attempts_and_owners_differ():
    owner = "o" * 63
    assert run_name(owner, "test", 1) != run_name(owner, "test", 2)
    assert run_name(owner, "test", 1) != run_name("o" * 62 + "p", "test", 1)


@pytest.mark.parametrize("stage_length", [45, 51, 52, 60, 63])
def test_run_name_with_a_long_stage_name_is_still_a_valid_label(stage_length):
    # Stage names may be any DNS label (up to 63 characters). With a long stage the suffix
    # `-<stage>-<attempt>` leaves `_fit` a zero or negative `keep`: the name then starts with
    # "-" or grows past 63 characters.
    name = run_name("b1-" + "t" * 60, "s" * stage_length, 1)
    assert is_label(name), (len(name), name)


def test_shortened_task_name_of_a_dotted_batch_is_still_a_valid_object_name():
    # Batch names are DNS-1123 subdomains and may hold dots. If the cut lands just after a
    # dot, only '-' is stripped and the name gets ".-", which no Kubernetes name allows.
    batch = "a." * 27 + "b" * 20  # the 54-character cut ends on a '.'
    name = task_name(batch, "T-1")
    assert len(name) <= MAX_NAME
    assert DNS1123_SUBDOMAIN.fullmatch(name), name


# Properties


@given(labels(), ticket_ids())
def test_property_task_names_are_short_valid_labels(batch, ticket_id):
    name = task_name(batch, ticket_id)
    assert is_label(name), name


@given(labels(), ticket_ids())
def test_property_task_names_are_deterministic(batch, ticket_id):
    assert task_name(batch, ticket_id) == task_name(str(batch), str(ticket_id))


@given(labels(), ticket_ids(), labels(max_size=40), attempts)
def test_property_run_names_of_task_names_are_short_valid_labels(batch, ticket_id, stage, attempt):
    name = run_name(task_name(batch, ticket_id), stage, attempt)
    assert is_label(name), name
    assert name.endswith(f"-{stage}-{attempt}")


@given(labels(), attempts)
def test_property_refinement_run_names_are_short_valid_labels(batch, attempt):
    name = refinement_run_name(batch, attempt)
    assert is_label(name), name
    assert name.endswith(f"-refine-{attempt}")


@given(labels(min_size=40), ticket_ids(min_size=20), ticket_ids(min_size=20))
def test_property_distinct_tickets_get_distinct_shortened_task_names(batch, first, second):
    assume(first != second)
    assume(len(f"{batch}-{ticket_slug(first)}") > MAX_NAME)
    assume(len(f"{batch}-{ticket_slug(second)}") > MAX_NAME)
    assert task_name(batch, first) != task_name(batch, second)


@given(labels(min_size=40), labels(min_size=40), ticket_ids(min_size=20))
def test_property_distinct_batches_get_distinct_shortened_task_names(first, second, ticket_id):
    assume(first != second)
    assume(len(f"{first}-{ticket_slug(ticket_id)}") > MAX_NAME)
    assume(len(f"{second}-{ticket_slug(ticket_id)}") > MAX_NAME)
    assert task_name(first, ticket_id) != task_name(second, ticket_id)


@given(
    labels(min_size=50), labels(min_size=50), labels(min_size=5, max_size=20), attempts, attempts
)
def test_property_distinct_runs_get_distinct_shortened_run_names(
    owner_a, owner_b, stage, attempt_a, attempt_b
):
    assume((owner_a, attempt_a) != (owner_b, attempt_b))
    assume(len(f"{owner_a}-{stage}-{attempt_a}") > MAX_NAME)
    assume(len(f"{owner_b}-{stage}-{attempt_b}") > MAX_NAME)
    assert run_name(owner_a, stage, attempt_a) != run_name(owner_b, stage, attempt_b)
