//! Naming rules for registry names.

/// Rust keywords (strict and reserved), which cannot name a module.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Why `name` is not a valid registry name, or `None` when it is: a
/// snake_case identifier (lowercase ASCII letters, digits and single
/// underscores, starting with a letter) that is not a Rust keyword.
pub fn registry_name_problem(name: &str) -> Option<String> {
    let snake = name.to_lowercase().replace(['-', ' '], "_");
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if name.is_empty() {
        Some("the registry name is empty; use a snake_case name such as \"my_model\"".into())
    } else if !starts_with_letter || !chars_ok || name.contains("__") || name.ends_with('_') {
        Some(format!(
            "registry name \"{name}\" is not snake_case: use lowercase letters, digits and \
             single underscores, starting with a letter (e.g. \"{}\")",
            suggestion(&snake)
        ))
    } else if KEYWORDS.contains(&name) {
        Some(format!(
            "registry name \"{name}\" is a Rust keyword; choose another, e.g. \"{name}_model\""
        ))
    } else {
        None
    }
}

fn suggestion(snake: &str) -> String {
    let mut out = String::new();
    for c in snake
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
    {
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('_').to_string();
    match out.chars().next() {
        Some(c) if c.is_ascii_lowercase() => out,
        _ => format!("model_{out}").trim_end_matches('_').to_string(),
    }
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
