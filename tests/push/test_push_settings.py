"""Push and Firebase settings that cannot work are refused at start-up."""

from __future__ import annotations

from backend.settings import load_settings


def test_a_claim_that_could_expire_during_a_send_is_refused():
    problems = load_settings(
        {"SURGE_PUSH_CLAIM_TTL_S": "30", "SURGE_FCM_TIMEOUT_S": "10"}
    ).configuration_problems()
    assert any("SURGE_PUSH_CLAIM_TTL_S" in problem for problem in problems)


def test_a_batch_larger_than_fcm_allows_is_refused():
    problems = load_settings({"SURGE_PUSH_BATCH_SIZE": "501"}).configuration_problems()
    assert any("SURGE_PUSH_BATCH_SIZE" in problem for problem in problems)


def test_a_missing_fcm_credentials_file_is_refused(tmp_path):
    missing = tmp_path / "nowhere.json"
    problems = load_settings({"SURGE_FCM_CREDENTIALS_FILE": str(missing)}).configuration_problems()
    assert any("SURGE_FCM_CREDENTIALS_FILE" in problem for problem in problems)


def test_the_push_defaults_work_on_a_laptop():
    settings = load_settings({})
    assert settings.configuration_problems() == []
    assert settings.push.dispatcher_enabled and not settings.push.include_text
    assert settings.fcm.credentials_file == "" and settings.firebase.project_id == ""
