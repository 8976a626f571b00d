//! Lifecycle: draft -> active -> disabled -> active, what is served in each state, and bad
//! transitions as typed errors.

use executus::ports::SkillSource;
use executus_skill::{SkillContent, SkillError, SkillState};

use crate::common::library;

#[tokio::test]
async fn only_an_active_skill_is_served() {
    let (skills, _clock) = library();
    let created =
        skills.create("search", SkillContent::new("Search first.").with_tools(["grep"])).await.unwrap();
    assert_eq!(created.state, SkillState::Draft);

    // A draft is not served, through the port or the library.
    assert_eq!(skills.skill("search").await.unwrap(), None);
    let err = skills.served("search").await.unwrap_err();
    assert_eq!(err, SkillError::NotActive { skill: "search".into(), state: SkillState::Draft });

    skills.enable("search").await.unwrap();
    let def = skills.skill("search").await.unwrap().unwrap();
    assert_eq!((def.name.as_str(), def.version), ("search", 1));
    assert_eq!(def.instructions, "Search first.");
    assert_eq!(def.tools, ["grep"]);

    // Disabled: not served any more.
    skills.disable("search").await.unwrap();
    assert_eq!(skills.skill("search").await.unwrap(), None);
    assert!(matches!(
        skills.served("search").await,
        Err(SkillError::NotActive { state: SkillState::Disabled, .. })
    ));

    // Disabled -> active again: served again.
    skills.enable("search").await.unwrap();
    assert_eq!(skills.skill("search").await.unwrap().unwrap().version, 1);

    // Unknown skills: None through the port, NotFound from the library.
    assert_eq!(skills.skill("nope").await.unwrap(), None);
    assert_eq!(skills.served("nope").await.unwrap_err(), SkillError::NotFound { skill: "nope".into() });
}

#[tokio::test]
async fn bad_transitions_name_the_skill_and_both_states() {
    let (skills, clock) = library();
    skills.create("notes", SkillContent::new("Take notes.")).await.unwrap();

    let err = skills.disable("notes").await.unwrap_err();
    assert_eq!(
        err,
        SkillError::BadTransition {
            skill: "notes".into(),
            from: SkillState::Draft,
            to: SkillState::Disabled
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("\"notes\"") && message.contains("draft") && message.contains("disabled"),
        "{message}"
    );

    clock.set_ms(2_000);
    let active = skills.enable("notes").await.unwrap();
    assert_eq!((active.state, active.updated_ms), (SkillState::Active, 2_000));
    assert!(matches!(
        skills.set_state("notes", SkillState::Draft).await,
        Err(SkillError::BadTransition { from: SkillState::Active, to: SkillState::Draft, .. })
    ));
    skills.disable("notes").await.unwrap();
    assert!(matches!(
        skills.set_state("notes", SkillState::Draft).await,
        Err(SkillError::BadTransition { from: SkillState::Disabled, to: SkillState::Draft, .. })
    ));

    // Setting the current state again is a no-op, not an error, and stamps nothing.
    clock.set_ms(3_000);
    let again = skills.disable("notes").await.unwrap();
    assert_eq!((again.state, again.updated_ms), (SkillState::Disabled, 2_000));

    assert_eq!(skills.enable("ghost").await.unwrap_err(), SkillError::NotFound { skill: "ghost".into() });
}

#[test]
fn state_names_round_trip_for_sql_columns() {
    for state in [SkillState::Draft, SkillState::Active, SkillState::Disabled] {
        assert_eq!(state.as_str().parse::<SkillState>().unwrap(), state);
        assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
    }
    assert!("enabled".parse::<SkillState>().unwrap_err().to_string().contains("enabled"));
}
