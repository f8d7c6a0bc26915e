//! Ref names from hostile events: whatever the string, `RefName::new` answers without panicking,
//! and what it accepts keeps every rule and round-trips through its text form.

use agigit_validate::{MAX_REF_NAME_LEN, RefName};
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_string_is_accepted_only_when_it_keeps_the_rules(s in "\\PC{0,300}|refs/[a-z./@{~^:?*\\[\\\\ -]{0,40}") {
        if let Ok(name) = RefName::new(s.clone()) {
            prop_assert_eq!(name.as_str(), s.as_str());
            prop_assert!(name.as_str().len() <= MAX_REF_NAME_LEN);
            prop_assert!(name.as_str().starts_with("refs/"));
            prop_assert!(!name.as_str().contains(".."));
            let reflog = "@{";
            prop_assert!(!name.as_str().contains(reflog));
            for c in name.as_str().split('/') {
                prop_assert!(!c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"));
            }
            prop_assert_eq!(name.to_string().parse::<RefName>(), Ok(name));
        }
    }

    #[test]
    fn plain_branch_names_are_accepted(b in "[a-zA-Z0-9_-]{1,40}(/[a-zA-Z0-9_-]{1,20}){0,3}") {
        let name = RefName::branch(&b).expect("a plain branch name");
        prop_assert_eq!(name.branch_name(), Some(b.as_str()));
    }

    #[test]
    fn a_long_name_is_refused_and_quoted_short(n in 256usize..2000) {
        let long = format!("refs/heads/{}", "a".repeat(n));
        let err = RefName::new(long).expect_err("too long");
        prop_assert!(err.value.chars().count() <= 81);
    }
}
