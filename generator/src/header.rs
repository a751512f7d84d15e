//! The first line of every file forge-gen creates: the command that made
//! it and a hash of the rest of the file.
//!
//! ```text
//! // forge-gen new my_model --head bin | sha256:0123456789abcdef
//! ```
//!
//! The hash is how forge-gen tells its own output from a hand-edited file:
//! a file whose body no longer matches is never overwritten or removed
//! without `--force`. The recorded command is how `remove` knows which
//! entries `new` inserted elsewhere. Deleting the line makes the file the
//! user's: forge-gen then treats it as hand-written.

use sha2::{Digest, Sha256};

/// Hex digits of the hash kept in the header.
const HASH_LEN: usize = 16;

/// What a header line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The arguments of `forge-gen new` that produced the file, without the
    /// program name (`new my_model --head bin`).
    pub command: Vec<String>,
    /// Whether the body still hashes to the recorded value.
    pub pristine: bool,
}

/// Short hex SHA-256 of `body`.
pub fn hash(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..HASH_LEN]
        .to_string()
}

/// `body` with a header line in comment style `comment` (`//` or `#`).
pub fn stamp(comment: &str, command: &[String], body: &str) -> String {
    let command = command
        .iter()
        .map(|a| quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{comment} forge-gen {command} | sha256:{}\n{body}",
        hash(body)
    )
}

/// The header of `text`, if its first line is one.
pub fn read(text: &str) -> Option<Header> {
    let (first, body) = text.split_once('\n')?;
    let rest = first
        .strip_prefix("// forge-gen ")
        .or_else(|| first.strip_prefix("# forge-gen "))?;
    let (command, hash_part) = rest.rsplit_once(" | sha256:")?;
    if hash_part.len() != HASH_LEN || !hash_part.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(Header {
        command: unquote(command)?,
        pristine: hash(body) == hash_part,
    })
}

/// Whether `text` is a file forge-gen wrote and nobody edited since.
pub fn is_pristine(text: &str) -> bool {
    read(text).is_some_and(|h| h.pristine)
}

/// Shell-style single quotes around an argument that needs them.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:=,/+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{arg}'")
    }
}

/// Splits a command written by [`stamp`] back into arguments (arguments
/// never contain `'`; option parsing refuses it).
fn unquote(command: &str) -> Option<Vec<String>> {
    let mut args = vec![];
    let mut current = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in command.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return None;
    }
    if started {
        args.push(current);
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_edit_detection() {
        let command: Vec<String> = ["new", "m", "--option", "act:String=a b<c>"]
            .map(String::from)
            .to_vec();
        let text = stamp("//", &command, "fn main() {}\n");
        assert!(text.starts_with("// forge-gen new m --option 'act:String=a b<c>' | sha256:"));
        let header = read(&text).unwrap();
        assert_eq!(header.command, command);
        assert!(header.pristine && is_pristine(&text));
        let edited = text.replace("main", "main2");
        assert_eq!(read(&edited).map(|h| h.pristine), Some(false));
        assert!(read("fn main() {}\n").is_none());
        assert!(is_pristine(&stamp("#", &command, "a: 1\n")));
    }
}
