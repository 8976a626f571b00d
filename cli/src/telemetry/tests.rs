use std::collections::HashMap;

use figment::Figment;
use figment::providers::{Format as _, Toml};

use super::*;

fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Option<Settings>, ConfigError> {
    let figment = Figment::new().merge(Toml::string(toml));
    let vars: HashMap<String, String> =
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Settings::load(&figment, &|k| vars.get(k).cloned())
}

#[test]
fn off_unless_an_endpoint_is_configured() {
    assert!(load("", &[]).unwrap().is_none());
    assert!(load("[telemetry]\nservice_name = \"x\"\n", &[]).unwrap().is_none());
    let on = load("[telemetry]\nendpoint = \"http://127.0.0.1:4318/\"\n", &[]).unwrap().unwrap();
    assert_eq!(on.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(on.protocol, Protocol::HttpBinary);
    assert_eq!(on.service_name, DEFAULT_SERVICE_NAME);
    assert!(!on.capture_content);
    // The off switches.
    assert!(load("[telemetry]\nendpoint = \"http://h:4318\"\nenabled = false\n", &[]).unwrap().is_none());
    assert!(
        load("[telemetry]\nendpoint = \"http://h:4318\"\n", &[("OTEL_SDK_DISABLED", "true")])
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_standard_variables_win_over_the_file() {
    let toml = "[telemetry]\nendpoint = \"http://file:4318\"\nprotocol = \"http/protobuf\"\nservice_name = \"file\"\n";
    let s = load(
        toml,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_SERVICE_NAME", "env"),
            ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"),
        ],
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (s.endpoint.as_str(), s.protocol, s.service_name.as_str(), s.capture_content),
        ("http://env:4318/v1/traces", Protocol::HttpJson, "env", true)
    );
    // The per-signal endpoint is used as it is.
    let s = load(toml, &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env:9/custom")]).unwrap().unwrap();
    assert_eq!(s.endpoint, "http://env:9/custom");
}

#[test]
fn bad_values_name_their_key() {
    let err = load("[telemetry]\nendpoint = \"http://h:4318\"\nprotocol = \"grpc\"\n", &[]).unwrap_err();
    assert!(
        err.to_string().contains("telemetry.protocol") && err.to_string().contains("http/protobuf"),
        "{err}"
    );
    let err = load("[telemetry]\nendpoint = \"h:4318\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("telemetry.endpoint"), "{err}");
    let err =
        load("", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "smoke")])
            .unwrap_err();
    assert!(err.to_string().contains("environment variable OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
    let toml = "[telemetry]\nendpoint = \"http://h:4318\"\n[telemetry.headers_env]\nauthorization = \"OTEL_TOKEN_VAR\"\n";
    let err = load(toml, &[]).unwrap_err();
    assert!(
        err.to_string().contains("telemetry.headers_env.authorization")
            && err.to_string().contains("OTEL_TOKEN_VAR"),
        "{err}"
    );
    let ok = load(toml, &[("OTEL_TOKEN_VAR", "Bearer s3cr3t-value")]).unwrap().unwrap();
    assert!(!format!("{ok:?}").contains("s3cr3t"), "the header value never prints");
    let err = load("[telemetry]\nendpoint = \"http://h:4318\"\ntimeout = \"soon\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("telemetry.timeout"), "{err}");
    let err = load("[telemetry]\nendpoint = \"http://h:4318\"\nmax_queue = 0\n", &[]).unwrap_err();
    assert!(err.to_string().contains("telemetry.max_queue"), "{err}");
    let err = load("[telemetry]\nendpoint = \"http://h:4318\"\nfilter = \"[[[\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("telemetry.filter"), "{err}");
}
