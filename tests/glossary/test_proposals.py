"""Propose -> approve / reject, versions with who, when and why, deprecation, roles; on both backends."""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness
from tests.glossary.factories import concept, load_content
from tocsin.auth.schemas import Role

PROPOSALS = "/api/v1/glossary/proposals"


async def propose(h: Harness, body: dict[str, Any], user: str = "olga", role: Role = Role.operator) -> dict[str, Any]:
    response = await h.client.post(PROPOSALS, json=body, headers=await h.user(user, role))
    assert response.status_code == 201, response.text
    proposal: dict[str, Any] = response.json()
    return proposal


async def decide(h: Harness, proposal_id: int, verdict: str, user: str = "gina", **body: Any) -> Any:
    return await h.client.post(
        f"{PROPOSALS}/{proposal_id}/{verdict}", json=body or None, headers=await h.user(user, Role.glossary_editor)
    )


async def versions(h: Harness, concept_id: str) -> list[dict[str, Any]]:
    response = await h.client.get(
        f"/api/v1/glossary/concepts/{concept_id}/versions", headers=await h.user("olga", Role.operator)
    )
    assert response.status_code == 200, response.text
    history: list[dict[str, Any]] = response.json()
    return history


def with_alt(document: dict[str, Any], lang: str, label: str) -> dict[str, Any]:
    terms = {**document["terms"], lang: {**document["terms"][lang]}}
    terms[lang]["alt"] = [*terms[lang]["alt"], label]
    return {**document, "terms": terms}


class TestPropose:
    async def test_any_staff_role_proposes_and_citizens_cannot(self, harness: Harness) -> None:
        for name, role in (("olga", Role.operator), ("pia", Role.planner), ("adam", Role.admin)):
            body = {"kind": "create", "reason": "needed", "document": concept(f"made-up-{name}")}
            assert (await propose(harness, body, name, role))["status"] == "pending"
        anonymous = await harness.client.post(
            PROPOSALS, json={"kind": "create", "reason": "x", "document": concept("made-up")}
        )
        assert anonymous.status_code == 401

    async def test_reason_is_required(self, harness: Harness) -> None:
        response = await harness.client.post(
            PROPOSALS,
            json={"kind": "create", "reason": "  ", "document": concept("made-up")},
            headers=await harness.user("olga"),
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "reason"

    async def test_schema_errors_name_the_field(self, harness: Harness) -> None:
        document = concept("made-up")
        del document["terms"]["el"]
        response = await harness.client.post(
            PROPOSALS, json={"kind": "create", "reason": "x", "document": document}, headers=await harness.user("olga")
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "document.terms"
        assert "el" in response.json()["error"]["message"]

    async def test_unresolved_reference_and_shared_pref_label_are_refused(self, harness: Harness) -> None:
        await load_content(harness)
        headers = await harness.user("olga")
        dangling = concept("made-up", broader=["no-such-concept"])
        response = await harness.client.post(
            PROPOSALS, json={"kind": "create", "reason": "x", "document": dangling}, headers=headers
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "document.broader[0]"
        clash = concept("made-up")
        clash["terms"]["fr"]["pref"] = "Inondation"  # flood's French preferred label, case aside
        response = await harness.client.post(
            PROPOSALS, json={"kind": "create", "reason": "x", "document": clash}, headers=headers
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "document.terms.fr.pref"

    async def test_create_of_an_existing_id_and_empty_update_are_refused(self, harness: Harness) -> None:
        await load_content(harness)
        headers = await harness.user("olga")
        current = (await harness.client.get("/api/v1/glossary/concepts/flood")).json()["concept"]
        exists = await harness.client.post(
            PROPOSALS, json={"kind": "create", "reason": "x", "document": current}, headers=headers
        )
        assert exists.status_code == 409
        assert exists.json()["error"]["code"] == "concept_exists"
        same = await harness.client.post(
            PROPOSALS, json={"kind": "update", "reason": "x", "document": current}, headers=headers
        )
        assert same.status_code == 422
        assert same.json()["error"]["field"] == "document"


class TestApprove:
    async def test_approved_update_is_the_next_version_with_who_when_why(self, harness: Harness) -> None:
        await load_content(harness)
        current = (await harness.client.get("/api/v1/glossary/concepts/flood")).json()["concept"]
        proposal = await propose(
            harness,
            {
                "kind": "update",
                "reason": "used by the Po basin authority",
                "document": with_alt(current, "it", "piena"),
            },
        )
        assert proposal["base_version"] == 1
        response = await decide(harness, proposal["id"], "approve", note="agreed with the regions")
        assert response.status_code == 200, response.text
        decided = response.json()
        assert (decided["status"], decided["decided_by"], decided["applied_version"]) == ("approved", "gina", 2)
        concept_now = (await harness.client.get("/api/v1/glossary/concepts/flood")).json()
        assert concept_now["version"] == 2
        assert "piena" in concept_now["concept"]["terms"]["it"]["alt"]
        history = await versions(harness, "flood")
        assert [v["version"] for v in history] == [1, 2]
        assert history[1]["changed_by"] == "gina"
        assert history[1]["action"] == "update"
        assert history[1]["proposal_id"] == proposal["id"]
        assert "used by the Po basin authority" in history[1]["reason"]
        assert history[0]["reason"] == "loaded"
        assert "piena" not in history[0]["concept"]["terms"]["it"]["alt"]
        one = await harness.client.get("/api/v1/glossary/concepts/flood/versions/1", headers=await harness.user("olga"))
        assert one.json()["concept"] == history[0]["concept"]
        search = await harness.client.get("/api/v1/glossary/search", params={"q": "piena"})
        assert search.json()[0]["concept_id"] == "flood"

    async def test_created_concept_is_version_one(self, harness: Harness) -> None:
        proposal = await propose(harness, {"kind": "create", "reason": "new", "document": concept("made-up")})
        assert (await decide(harness, proposal["id"], "approve")).status_code == 200
        body = (await harness.client.get("/api/v1/glossary/concepts/made-up")).json()
        assert body["version"] == 1
        assert body["concept"]["terms"]["pl"]["pref"] == "made up pl"

    async def test_only_a_glossary_editor_approves_and_not_their_own(self, harness: Harness) -> None:
        proposal = await propose(harness, {"kind": "create", "reason": "new", "document": concept("made-up")})
        approver = await harness.client.post(
            f"{PROPOSALS}/{proposal['id']}/approve", headers=await harness.user("anna", Role.approver)
        )
        assert approver.status_code == 403
        assert approver.json()["error"]["code"] == "missing_role"
        own = await propose(
            harness,
            {"kind": "create", "reason": "new", "document": concept("made-up-two")},
            "gina",
            Role.glossary_editor,
        )
        response = await decide(harness, own["id"], "approve", user="gina")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "own_proposal"

    async def test_a_decided_proposal_cannot_be_decided_again(self, harness: Harness) -> None:
        proposal = await propose(harness, {"kind": "create", "reason": "new", "document": concept("made-up")})
        assert (await decide(harness, proposal["id"], "approve")).status_code == 200
        again = await decide(harness, proposal["id"], "reject", note="too late")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "proposal_decided"

    async def test_stale_proposal_is_refused(self, harness: Harness) -> None:
        await load_content(harness)
        current = (await harness.client.get("/api/v1/glossary/concepts/flood")).json()["concept"]
        first = await propose(harness, {"kind": "update", "reason": "a", "document": with_alt(current, "en", "deluge")})
        second = await propose(harness, {"kind": "update", "reason": "b", "document": with_alt(current, "en", "spate")})
        assert (await decide(harness, first["id"], "approve")).status_code == 200
        stale = await decide(harness, second["id"], "approve")
        assert stale.status_code == 409
        assert stale.json()["error"]["code"] == "stale_proposal"

    async def test_propose_approve_reject_are_in_the_audit_log(self, harness: Harness) -> None:
        one = await propose(harness, {"kind": "create", "reason": "new", "document": concept("made-up")})
        two = await propose(harness, {"kind": "create", "reason": "new", "document": concept("made-up-two")})
        await decide(harness, one["id"], "approve")
        await decide(harness, two["id"], "reject", note="duplicate")
        log = await harness.client.get("/api/v1/audit", headers=await harness.user("anna", Role.approver))
        actions = [(e["action"], e["actor"]) for e in log.json()]
        assert ("glossary_propose", "olga") in actions
        assert ("glossary_approve", "gina") in actions
        assert ("glossary_reject", "gina") in actions


class TestReject:
    async def test_rejection_needs_a_note_and_changes_nothing(self, harness: Harness) -> None:
        proposal = await propose(harness, {"kind": "create", "reason": "new", "document": concept("made-up")})
        assert (await decide(harness, proposal["id"], "reject")).status_code == 422
        response = await decide(harness, proposal["id"], "reject", note="we say 'made up' differently")
        assert response.status_code == 200
        assert response.json()["status"] == "rejected"
        assert response.json()["decision_note"] == "we say 'made up' differently"
        assert (await harness.client.get("/api/v1/glossary/concepts/made-up")).status_code == 404

    async def test_proposals_are_listed_by_status(self, harness: Harness) -> None:
        one = await propose(harness, {"kind": "create", "reason": "new", "document": concept("made-up")})
        await propose(harness, {"kind": "create", "reason": "new", "document": concept("made-up-two")})
        await decide(harness, one["id"], "reject", note="no")
        headers = await harness.user("olga")
        pending = await harness.client.get(PROPOSALS, params={"status": "pending"}, headers=headers)
        assert [p["concept_id"] for p in pending.json()] == ["made-up-two"]
        assert (await harness.client.get(PROPOSALS)).status_code == 401


class TestDeprecate:
    async def test_deprecation_names_an_active_replacement(self, harness: Harness) -> None:
        await load_content(harness)
        for replaced_by, field in ((None, "replaced_by"), ("no-such-concept", "replaced_by"), ("flood", "replaced_by")):
            response = await harness.client.post(
                PROPOSALS,
                json={"kind": "deprecate", "reason": "x", "concept_id": "flood", "replaced_by": replaced_by},
                headers=await harness.user("olga"),
            )
            assert response.status_code == 422, replaced_by
            assert response.json()["error"]["field"] == field

    async def test_approved_deprecation_is_a_version_and_search_shows_the_replacement(self, harness: Harness) -> None:
        await load_content(harness)
        proposal = await propose(
            harness,
            {"kind": "deprecate", "reason": "merged", "concept_id": "river-flood", "replaced_by": "flood"},
        )
        assert proposal["document"]["status"] == "deprecated"
        assert (await decide(harness, proposal["id"], "approve")).status_code == 200
        body = (await harness.client.get("/api/v1/glossary/concepts/river-flood")).json()
        assert (body["version"], body["concept"]["status"], body["concept"]["replaced_by"]) == (
            2,
            "deprecated",
            "flood",
        )
        history = await versions(harness, "river-flood")
        assert history[-1]["action"] == "deprecate"
        hit = (await harness.client.get("/api/v1/glossary/search", params={"q": "river flood"})).json()[0]
        assert (hit["concept_id"], hit["status"], hit["replaced_by"]) == ("river-flood", "deprecated", "flood")
        again = await harness.client.post(
            PROPOSALS,
            json={"kind": "deprecate", "reason": "x", "concept_id": "river-flood", "replaced_by": "flood"},
            headers=await harness.user("olga"),
        )
        assert again.status_code == 409
        # A deprecated concept cannot be named as a replacement.
        other = await harness.client.post(
            PROPOSALS,
            json={"kind": "deprecate", "reason": "x", "concept_id": "flash-flood", "replaced_by": "river-flood"},
            headers=await harness.user("olga"),
        )
        assert other.status_code == 422
