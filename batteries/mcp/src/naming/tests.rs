use super::*;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(s, t)| ((*s).to_owned(), (*t).to_owned())).collect()
}

#[test]
fn names_are_prefixed_sanitised_and_capped() {
    assert_eq!(exposed_name("fs", "read_file"), "mcp__fs__read_file");
    assert_eq!(exposed_name("fs", "read.file/v2 é"), "mcp__fs__read_file_v2__");
    let long = "x".repeat(100);
    let name = exposed_name("everything", &long);
    assert_eq!(name.len(), MAX_TOOL_NAME);
    assert!(name.starts_with("mcp__everything__xxx"), "{name}");
    let (cut, hash) = name.split_at(MAX_TOOL_NAME - 9);
    assert!(cut.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()));
    assert!(hash.starts_with('_') && hash[1..].chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
    // Stable: the same input always gives the same name; another input another one.
    assert_eq!(name, exposed_name("everything", &long));
    assert_ne!(name, exposed_name("everything", &format!("{long}y")));
    assert!(exposed_name("s", &"é".repeat(80)).len() <= MAX_TOOL_NAME);
}

#[test]
fn collisions_keep_the_first_plain_name_and_hash_the_others() {
    let p = pairs(&[("b", "read.file"), ("a", "x"), ("b", "read_file"), ("b", "read-file")]);
    let names = assign(&p).unwrap();
    assert_eq!(names[1], "mcp__a__x");
    // ("b","read.file") < ("b","read_file") in (server, tool) order: it keeps the plain name.
    assert_eq!(names[0], "mcp__b__read_file");
    assert!(names[2].starts_with("mcp__b__read_file_") && names[2].len() == "mcp__b__read_file".len() + 9);
    assert_eq!(names[3], "mcp__b__read-file");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    // Order of the input does not change who gets which name.
    let mut rev = p.clone();
    rev.reverse();
    let mut again = assign(&rev).unwrap();
    again.reverse();
    assert_eq!(again, names);
}

#[test]
fn a_pair_that_cannot_be_told_apart_is_reported() {
    // Twice gets a hashed second name; a third identical pair has nothing left to tell it by.
    assert!(assign(&pairs(&[("a", "t"), ("a", "t")])).is_ok());
    let p = pairs(&[("a", "t"), ("a", "t"), ("a", "t")]);
    assert_eq!(assign(&p).unwrap_err(), pairs(&[("a", "t"), ("a", "t")]));
}
