//! Naming rules for registry names.

use forge_names::{NameProblem, model_name_problem, to_snake_case};

/// Why `name` is not a valid registry name, or `None` when it is: the rule
/// forge-gen applies too ([`forge_names::model_name_problem`]): a snake_case
/// identifier (lowercase ASCII letters, digits and single underscores,
/// starting with a letter) that is neither a Rust keyword (`union`
/// included) nor a module name that would shadow a crate (`std`).
pub fn registry_name_problem(name: &str) -> Option<String> {
    Some(match model_name_problem(name)? {
        NameProblem::Empty => {
            "the registry name is empty; use a snake_case name such as \"my_model\"".into()
        }
        NameProblem::NotSnakeCase(_) => format!(
            "registry name \"{name}\" is not snake_case: use lowercase letters, digits and \
             single underscores, starting with a letter (e.g. \"{}\")",
            to_snake_case(name).unwrap_or_else(|| "my_model".into())
        ),
        NameProblem::Keyword => format!(
            "registry name \"{name}\" is a Rust keyword; choose another, e.g. \"{name}_model\""
        ),
        NameProblem::ReservedModule => format!(
            "registry name \"{name}\" would shadow the crate or harness of that name as a \
             module; choose another, e.g. \"{name}_model\""
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::registry_name_problem;

    #[test]
    fn accepts_snake_case_and_refuses_the_rest() {
        assert_eq!(registry_name_problem("transformer_encoder"), None);
        assert_eq!(registry_name_problem("mae2"), None);
        for bad in [
            "MyModel",
            "my-model",
            "2model",
            "my__model",
            "model_",
            "",
            "type",
            "union",
            "std",
        ] {
            assert!(registry_name_problem(bad).is_some(), "{bad}");
        }
        assert!(
            registry_name_problem("My-Model")
                .unwrap()
                .contains("\"my_model\"")
        );
    }
}
