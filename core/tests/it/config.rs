//! Configuration: defaults <- executus.toml <- EXECUTUS_* env, validated; bad values name
//! the key and where they came from.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use executus::config::{ConfigError, RuntimeConfig, figment};

fn file(contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("executus.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    (dir, path)
}

/// Loads `contents` as the configuration file (the process has no `EXECUTUS_*` variables
/// outside the env test's child process).
fn load(contents: &str) -> (Result<RuntimeConfig, ConfigError>, PathBuf) {
    let (dir, path) = file(contents);
    let result = RuntimeConfig::load(Some(&path), true);
    drop(dir);
    (result, path)
}

#[test]
fn loop_protection_and_tool_limits_come_from_the_file() {
    let (cfg, _) = load(
        r#"
        [loops]
        cycle = 5
        finalize_turns = 0

        [agents.strict]
        model = "fake/m"
        tool_concurrency = 2
        tool_error_limit = 3
        loops = { stagnation = 2, unproductive = 6 }

        [agents.plain]
        model = "fake/m"
        "#,
    );
    let cfg = cfg.unwrap();
    let strict = &cfg.agents["strict"].limits;
    assert_eq!((strict.tool_concurrency, strict.tool_error_limit), (2, 3));
    assert_eq!(
        strict.loops,
        executus::LoopLimits { cycle: 5, stagnation: 2, unproductive: 6, finalize_turns: 0 },
        "[loops] under the agent's own"
    );
    let plain = &cfg.agents["plain"].limits;
    assert_eq!(
        plain.loops,
        executus::LoopLimits { cycle: 5, finalize_turns: 0, ..executus::LoopLimits::default() }
    );
    assert_eq!(plain.tool_concurrency, executus::Limits::default().tool_concurrency);
    assert_bad("[loops]\ncycle = 1\n", "loops.cycle", "at least 2");
    assert_bad(
        "[agents.a]\nmodel = \"fake/m\"\nloops = { stagnation = 0 }\n",
        "agents.a.loops.stagnation",
        "at least 1",
    );
    assert_bad(
        "[agents.a]\nmodel = \"fake/m\"\ntool_concurrency = 0\n",
        "agents.a.tool_concurrency",
        "at least 1",
    );
    assert_bad("[agents.a]\nmodel = \"fake/m\"\nloops = { cycles = 3 }\n", "cycles", "unknown field");
}

#[test]
fn a_valid_file_loads_lanes_tiers_and_agents() {
    let (cfg, _) = load(
        r#"
        [runtime]
        checkpoint_interval = "250ms"
        streaming = false
        stream_restarts = 3
        shutdown_grace = 5

        [lanes.default]
        capacity = 2
        [lanes.batch]
        capacity = 16
        max_queue = 0

        [tiers]
        fast = "fake/small, fake/big"

        [agents.triage]
        system = "Sort tickets."
        model = "fast"
        tools = ["echo"]
        max_steps = 4
        timeout = "2m"
        soft_timeout = "90s"
        temperature = 0.2
        lane = "batch"

        [dispatch]
        max_depth = 2
        "#,
    );
    let cfg = cfg.unwrap();
    assert_eq!(cfg.checkpoint_interval, Duration::from_millis(250));
    assert_eq!(cfg.stream_restarts, 3);
    assert!(!cfg.streaming);
    assert_eq!(cfg.shutdown_grace, Duration::from_secs(5));
    assert_eq!(cfg.lanes["default"].capacity.get(), 2);
    assert_eq!((cfg.lanes["batch"].capacity.get(), cfg.lanes["batch"].max_queue), (16, 0));
    assert_eq!(cfg.tiers["fast"], "fake/small, fake/big");
    assert_eq!(cfg.dispatch.max_depth, 2);
    assert_eq!(cfg.dispatch.max_fanout, 8, "unset keys keep their defaults");
    let triage = &cfg.agents["triage"];
    assert_eq!(
        (triage.name.as_str(), triage.model.as_str(), triage.system.as_str()),
        ("triage", "fast", "Sort tickets.")
    );
    assert_eq!(triage.tools, ["echo"]);
    assert_eq!(triage.limits.max_steps, 4);
    assert_eq!(triage.limits.timeout, Duration::from_secs(120));
    assert_eq!(triage.limits.soft_timeout, Some(Duration::from_secs(90)));
    assert_eq!(triage.temperature, Some(0.2));
    assert_eq!(triage.lane.as_deref(), Some("batch"));
}

#[test]
fn no_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig::load(Some(&dir.path().join("absent.toml")), false).unwrap();
    assert_eq!(cfg, RuntimeConfig::default());
    let err = RuntimeConfig::load(Some(&dir.path().join("absent.toml")), true).unwrap_err();
    assert!(err.to_string().contains("absent.toml"), "{err}");
}

/// Asserts that loading `contents` fails naming `key` and the file.
fn assert_bad(contents: &str, key: &str, reason: &str) {
    let (result, path) = load(contents);
    let err = result.expect_err("a bad value must not load");
    let text = err.to_string();
    assert!(text.contains(key), "{text:?} does not name {key}");
    assert!(text.contains(&path.display().to_string()), "{text:?} does not name the file");
    assert!(text.contains(reason), "{text:?} does not say {reason:?}");
}

#[test]
fn bad_values_name_the_key_and_the_file() {
    assert_bad("[lanes.default]\ncapacity = 0\n", "lanes.default.capacity", "at least 1");
    assert_bad("[lanes.fast]\ncapacity = -3\n", "lanes.fast.capacity", "-3");
    assert_bad("[lanes.fast]\nmax_queue = -1\n", "lanes.fast.max_queue", "-1");
    assert_bad("[runtime]\ncheckpoint_interval = \"soon\"\n", "checkpoint_interval", "soon");
    assert_bad(
        "[agents.a]\nmodel = \"fake/m\"\ntemperature = 5.0\n",
        "agents.a.temperature",
        "between 0 and 2",
    );
    assert_bad("[agents.a]\nmodel = \"fake/m\"\ntimeout = \"0s\"\n", "agents.a.timeout", "longer than 0s");
    assert_bad("[agents.a]\nsystem = \"no model\"\n", "agents.a.model", "needs a model");
    assert_bad("[dispatch]\nmax_depth = 0\n", "dispatch.max_depth", "at least 1");
    assert_bad("[runtime]\nmax_tool_output_bytes = 10\n", "runtime.max_tool_output_bytes", "at least 256");
    assert_bad("[tiers]\nfast = \" \"\n", "tiers.fast", "non-empty");
    assert_bad("[runtime]\nstream_restarts = -1\n", "runtime.stream_restarts", "0 to 10");
    assert_bad("[runtime]\nstream_restarts = 11\n", "runtime.stream_restarts", "0 to 10");
    assert_bad("[runtime]\nstreeming = true\n", "streeming", "unknown field");
}

/// Regression (found by the `config` fuzz target's seeds): a duration given as a number of
/// seconds past `Duration::MAX` used to panic in `Duration::from_secs_f64`; it is an error
/// naming the key.
#[test]
fn durations_too_large_for_a_duration_are_errors_not_panics() {
    assert_bad("[runtime]\ncheckpoint_interval = 1e20\n", "checkpoint_interval", "below 1.8e19");
    assert_bad("[runtime]\nshutdown_grace = 1.8446744073709552e19\n", "shutdown_grace", "1.8e19");
    assert_bad("[agents.a]\nmodel = \"fake/m\"\ntool_timeout = 1e300\n", "tool_timeout", "below 1.8e19");
    assert_bad("[runtime]\ncheckpoint_interval = -1.5\n", "checkpoint_interval", "non-negative");
    assert_bad("[runtime]\ncheckpoint_interval = nan\n", "checkpoint_interval", "non-negative");
    // The largest whole number of seconds that fits still loads.
    let (result, _) = load("[runtime]\nshutdown_grace = 1e19\n");
    assert_eq!(result.unwrap().shutdown_grace, std::time::Duration::from_secs(10_000_000_000_000_000_000));
}

const CHILD: &str = "IT_CONFIG_CHILD";

/// The environment layer is real process environment, so this test re-runs itself in a
/// child process with `EXECUTUS_*` variables set (tests must not mutate their own
/// environment). The child asserts; the parent checks that it passed.
#[test]
fn environment_overrides_the_file_and_bad_values_name_the_variable() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let (_dir, path) = file("[lanes.default]\ncapacity = 2\n[runtime]\nstreaming = true\n");
    let exe = std::env::current_exe().unwrap();
    let run = |bad: bool| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "--exact",
            "config::environment_overrides_the_file_and_bad_values_name_the_variable",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &path)
        .env("EXECUTUS_RUNTIME__STREAMING", "false")
        .env("EXECUTUS_LANES__DEFAULT__CAPACITY", if bad { "0" } else { "7" });
        if bad {
            cmd.env("IT_CONFIG_EXPECT_BAD", "1");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "the child ran the test");
    };
    run(false);
    run(true);
}

fn child() {
    let path = PathBuf::from(std::env::var_os(CHILD).unwrap());
    let result = RuntimeConfig::load(Some(&path), true);
    if std::env::var_os("IT_CONFIG_EXPECT_BAD").is_some() {
        let err = result.expect_err("capacity 0 from the environment must not load").to_string();
        assert!(err.contains("lanes.default.capacity"), "{err}");
        assert!(err.contains("EXECUTUS_LANES__DEFAULT__CAPACITY"), "names the variable: {err}");
    } else {
        let cfg = result.unwrap();
        assert_eq!(cfg.lanes["default"].capacity.get(), 7, "env overrides the file");
        assert!(!cfg.streaming);
        // The figment knows where each value came from.
        let fig = figment(Some(&path), true).unwrap();
        assert!(executus::config::source_of(&fig, "lanes.default.capacity").contains("environment"));
        assert!(executus::config::source_of(&fig, "lanes.default.capacity").contains("EXECUTUS_"));
    }
}

#[test]
fn the_run_mode_is_drive_by_default_queue_when_asked_and_anything_else_is_named() {
    let (cfg, _) = load("");
    assert_eq!(cfg.unwrap().mode, executus::config::RunMode::Drive);
    let (cfg, _) = load("[runtime]\nmode = \"queue\"\n");
    assert_eq!(cfg.unwrap().mode, executus::config::RunMode::Queue);
    assert_bad("[runtime]\nmode = \"cluster\"\n", "runtime.mode", "\"drive\" or \"queue\"");
}
