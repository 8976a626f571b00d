use super::*;

#[test]
fn redact_removes_passwords_from_userinfo_and_query() {
    assert_eq!(redact("postgres://ada:s3cret@db.local:5432/exec"), "postgres://ada@db.local:5432/exec");
    assert_eq!(redact("postgres://ada@db/exec"), "postgres://ada@db/exec");
    assert_eq!(
        redact("postgres://db/exec?password=s3cret&sslmode=disable"),
        "postgres://db/exec?sslmode=disable"
    );
    assert_eq!(redact("postgresql://u:p%40ss@h/d?password=x"), "postgresql://u@h/d");
    assert!(!redact("postgres://u:hunter2@h/d?application_name=a&Password=hunter2").contains("hunter2"));
    assert_eq!(redact("postgres://host/db"), "postgres://host/db");
}

#[test]
fn lock_keys_fold_both_halves_of_the_run_id() {
    let a: RunId = "0190a0f0-0000-7000-8000-00000000c0de".parse().unwrap();
    let b: RunId = "0190a0f0-0000-7000-8000-00000000c0df".parse().unwrap();
    assert_ne!(lease::lock_key(a), lease::lock_key(b));
    assert_eq!(lease::lock_key(a), lease::lock_key(a));
}
