use serde_json::json;

use super::*;

#[test]
fn sizes_parse_and_print() {
    assert_eq!("1024x768".parse::<ImageSize>(), Ok(ImageSize::new(1024, 768)));
    assert_eq!(" 512X512 ".parse::<ImageSize>(), Ok(ImageSize::new(512, 512)));
    assert_eq!(ImageSize::new(1792, 1024).to_string(), "1792x1024");
    for bad in ["", "1024", "0x10", "10x0", "x", "axb", "20000x10", "-1x5", "1024x1024x3"] {
        let e = bad.parse::<ImageSize>().expect_err(bad);
        assert!(e.to_string().contains("expected WIDTHxHEIGHT"), "{bad}: {e}");
    }
    let size: ImageSize = serde_json::from_value(json!("640x480")).expect("serde");
    assert_eq!(serde_json::to_value(size).expect("serde"), json!("640x480"));
}

#[test]
fn requests_are_checked_before_sending() {
    assert_eq!(ImageRequest::new("a cat").problem(), None);
    assert_eq!(ImageRequest::new(" \n").problem().as_deref(), Some("the prompt is empty"));
    let zero = ImageRequest { n: 0, ..ImageRequest::new("a cat") };
    assert_eq!(zero.problem().as_deref(), Some("n must be 1 to 10, got 0"));
    let parsed: ImageRequest = serde_json::from_value(json!({"prompt": "a cat"})).expect("defaults");
    assert_eq!(parsed.n, 1);
}
