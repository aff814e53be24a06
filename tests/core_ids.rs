//! Id validation, by property: what breaks a rule is refused, what is built from a
//! safe alphabet is accepted, and no accepted id leaves its parent directory.

mod common;

use std::path::{Component, Path};

use fedota_store::{Error, IdKind, ProblemId, ProblemLayout, SelectorId};
use proptest::prelude::*;

/// The safe alphabet: letters, digits, `-`, `_`, `.` and `:`.
const SAFE: &str = "[A-Za-z0-9_:.-]";
const SAFE_FIRST: &str = "[A-Za-z0-9_:-]";

/// An id from the safe alphabet, 1 to 255 bytes, not starting with `.`.
fn safe_id() -> impl Strategy<Value = String> {
    (
        SAFE_FIRST,
        proptest::string::string_regex(&format!("{SAFE}{{0,254}}")).unwrap(),
    )
        .prop_map(|(first, rest)| first + &rest)
}

/// A control character: C0, DEL or C1.
fn control_char() -> impl Strategy<Value = char> {
    prop_oneof![
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
        Just('\u{7f}'),
        (0x80u32..0xa0).prop_map(|c| char::from_u32(c).unwrap()),
    ]
}

/// Asserts that both id types refuse `id` with an error that gives it back.
fn assert_refused(id: &str) -> Result<(), TestCaseError> {
    for (kind, result) in [
        (IdKind::Problem, ProblemId::new(id).map(|_| ())),
        (IdKind::Selector, SelectorId::new(id).map(|_| ())),
    ] {
        match result {
            Err(Error::InvalidId {
                kind: k,
                id: given_back,
                reason,
            }) => {
                prop_assert_eq!(k, kind);
                prop_assert_eq!(given_back.as_str(), id);
                prop_assert!(!reason.is_empty());
            }
            other => prop_assert!(false, "{kind} id {id:?} was not refused: {other:?}"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_id_from_the_safe_alphabet_is_accepted(id in safe_id()) {
        prop_assume!(id != "initFiles");
        let problem = ProblemId::new(id.as_str()).unwrap();
        let selector = SelectorId::new(id.as_str()).unwrap();
        prop_assert_eq!(problem.as_str(), id.as_str());
        prop_assert_eq!(selector.to_string(), id.clone());
        prop_assert_eq!(id.parse::<SelectorId>().unwrap(), selector);
    }

    #[test]
    fn an_id_with_a_slash_anywhere_is_refused(
        (head, tail) in (safe_id(), proptest::string::string_regex(&format!("{SAFE}{{0,40}}")).unwrap()),
        at in 0usize..=1,
    ) {
        let id = if at == 0 { format!("{head}/{tail}") } else { format!("/{head}{tail}") };
        assert_refused(&id)?;
    }

    #[test]
    fn an_id_with_a_control_character_anywhere_is_refused(
        head in proptest::string::string_regex(&format!("{SAFE_FIRST}{{0,20}}")).unwrap(),
        c in control_char(),
        tail in proptest::string::string_regex(&format!("{SAFE}{{0,20}}")).unwrap(),
    ) {
        assert_refused(&format!("{head}{c}{tail}"))?;
    }

    #[test]
    fn an_id_with_a_leading_dot_is_refused(rest in proptest::string::string_regex(&format!("{SAFE}{{0,100}}")).unwrap()) {
        assert_refused(&format!(".{rest}"))?;
    }

    #[test]
    fn an_id_longer_than_255_bytes_is_refused(id in proptest::string::string_regex(&format!("{SAFE_FIRST}{SAFE}{{255,400}}")).unwrap()) {
        prop_assert!(id.len() > 255);
        assert_refused(&id)?;
    }

    #[test]
    fn an_id_of_few_characters_but_over_255_bytes_is_refused(n in 64usize..=200) {
        // 'é' is two bytes, '€' three: fewer than 255 characters, more than 255 bytes.
        let id: String = std::iter::repeat_n('€', n).chain("é".chars()).collect();
        prop_assume!(id.len() > 255);
        assert_refused(&id)?;
    }

    #[test]
    fn an_id_is_accepted_exactly_when_it_breaks_no_rule(
        id in prop_oneof![
            any::<String>(),
            proptest::string::string_regex("[a./\\x00-\\x1f\\x7f\\u{85}é:-]{0,8}").unwrap(),
            proptest::string::string_regex("[a-z.]{250,260}").unwrap(),
        ]
    ) {
        let breaks_a_rule = id.is_empty()
            || id == "."
            || id == ".."
            || id.len() > 255
            || id.starts_with('.')
            || id.contains('/')
            || id.chars().any(char::is_control);
        prop_assert_eq!(ProblemId::new(id.as_str()).is_ok(), !breaks_a_rule, "{:?}", id);
        prop_assert_eq!(
            SelectorId::new(id.as_str()).is_ok(),
            !breaks_a_rule && id != "initFiles",
            "{:?}",
            id
        );
    }

    #[test]
    fn no_accepted_id_leaves_its_parent_directory(id in any::<String>()) {
        check_contained(&id)?;
    }

    #[test]
    fn no_accepted_id_made_of_path_pieces_leaves_its_parent_directory(
        pieces in proptest::collection::vec(prop_oneof![
            Just("."), Just(".."), Just("/"), Just("a"), Just("\\"), Just(":"), Just("\0"), Just("~"),
        ], 1..8)
    ) {
        check_contained(&pieces.concat())?;
    }
}

/// If `id` is accepted, joining it to a root gives exactly one more component, a
/// normal one, whose parent is the root.
fn check_contained(id: &str) -> Result<(), TestCaseError> {
    let root = Path::new("/data");

    if let Ok(problem) = ProblemId::new(id) {
        let joined = root.join(&problem);
        prop_assert_eq!(joined.parent(), Some(root));
        prop_assert_eq!(joined.components().count(), root.components().count() + 1);
        prop_assert!(matches!(
            joined.components().next_back(),
            Some(Component::Normal(_))
        ));

        let layout = ProblemLayout::new(root, &problem);
        if let Ok(selector) = SelectorId::new(id) {
            let dir = layout.selector_dir(&selector);
            prop_assert_eq!(dir.parent(), Some(layout.dir()));
            prop_assert_ne!(dir, layout.init_dir());
        }
    }
    if SelectorId::new(id).is_ok() {
        prop_assert!(
            ProblemId::new(id).is_ok(),
            "a selector id is also a valid name"
        );
    }
    Ok(())
}

#[test]
fn the_real_selector_id_form_is_accepted() {
    let id = SelectorId::new("selector-7d4f9c-x2x9q.selector:50051").unwrap();
    assert_eq!(id.as_str(), "selector-7d4f9c-x2x9q.selector:50051");

    // And it works as a directory, end to end.
    let tree = common::Tree::new();
    let selector = tree.store.selector(&tree.id, &id).unwrap();
    selector.commit_aggregate(0, 1, &mut &b"x"[..]).unwrap();
    assert!(
        tree.selector_dir("selector-7d4f9c-x2x9q.selector:50051")
            .join("fl_agg_checkpoint")
            .is_file()
    );
}

#[test]
fn the_named_bad_ids_are_refused_with_their_reason() {
    for (id, reason) in [
        ("", "empty"),
        (".", "directory itself or its parent"),
        ("..", "directory itself or its parent"),
        ("a/b", "'/'"),
        ("/", "'/'"),
        ("a\0b", "control"),
        ("a\nb", "control"),
        (".hidden", "starts with '.'"),
        (".fedota-tmp.x", "starts with '.'"),
    ] {
        for err in [
            ProblemId::new(id).unwrap_err(),
            SelectorId::new(id).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(msg.contains(reason), "{id:?}: {msg}");
            assert!(msg.contains(&format!("{id:?}")), "{id:?}: {msg}");
        }
    }
    let long = "a".repeat(256);
    assert!(
        ProblemId::new(long.as_str())
            .unwrap_err()
            .to_string()
            .contains("255 bytes")
    );
    assert!(ProblemId::new("a".repeat(255)).is_ok());
}

#[test]
fn init_files_is_refused_as_a_selector_id_only() {
    let err = SelectorId::new("initFiles").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidId {
                kind: IdKind::Selector,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("shared directory"), "{err}");
    assert!(ProblemId::new("initFiles").is_ok());
}
