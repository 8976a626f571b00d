//! `schedule`: jobs from `[schedule.jobs.ID]` fire in the foreground and deliver to stdout;
//! SIGTERM (or SIGINT) stops admitting, gives in-flight runs the grace period, checkpoints
//! them and exits 0; bad jobs are configuration errors naming the key.

use std::time::Duration;

use wiremock::ResponseTemplate;

use crate::common::*;

fn every_second(server: &str, input: &str) -> String {
    format!(
        "{}\n[schedule.jobs.ticker]\ncron = \"* * * * * *\"\nagent = \"helper\"\ninput = \"{input}\"\nidentity = \"ops@acme\"\n",
        base_config(server)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_fire_deliver_to_stdout_and_stop_on_sigterm() {
    let server = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("tock"))).await;
    let ws = Workspace::new(&every_second(&server.uri(), "tick"));
    let mut child = ws.command(&["schedule"]).spawn().unwrap();
    let lines = stdout_lines(&mut child);
    // The cron fires every second: the first delivery comes within a couple of seconds.
    let delivered = lines.recv_timeout(HANG).expect("a delivery (hang guard)");
    assert!(delivered.starts_with("[helper ") && delivered.contains("completed] tock"), "{delivered}");
    signal(&child, "TERM");
    let out = wait_exit(child, HANG).await;
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("schedule: job ticker (* * * * * * UTC) -> agent helper"), "{stderr}");
    assert!(stderr.contains("ticker: fired run"), "{stderr}");
    assert!(stderr.contains("SIGTERM: no more fires") && stderr.ends_with("schedule: stopped\n"), "{stderr}");
    let seen = transcript(&calls(&server).await[0]);
    assert!(seen.contains("tick"), "the job's input reached the model: {seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_in_flight_at_shutdown_is_interrupted_within_the_grace_period() {
    let server = openai_server(|_| {
        ResponseTemplate::new(200).set_body_json(text_answer("late")).set_delay(Duration::from_secs(120))
    })
    .await;
    let ws = Workspace::new(&every_second(&server.uri(), "slow work"));
    let child = ws.command(&["schedule"]).spawn().unwrap();
    wait_for_calls(&server, 1).await;
    signal(&child, "INT");
    // shutdown_grace is 1 s in the test configuration; the model would take 120 s.
    let out = wait_exit(child, HANG).await;
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("SIGINT: no more fires; 1 run(s) in flight get 1s to finish"), "{stderr}");
    assert!(!text(&out.stdout).contains("late"), "the run did not finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_errors() {
    let server = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("x"))).await;
    let config = format!(
        "{}\n[schedule.jobs.morning]\ncron = \"0 8 * * MON-FRI\"\ntimezone = \"Europe/Paris\"\nagent = \"helper\"\ninput = \"Summarise yesterday.\"\n",
        base_config(&server.uri())
    );
    let ws = Workspace::new(&config);
    let out = ws.run(&["schedule", "--list"], None).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("morning  0 8 * * MON-FRI") && stdout.contains("Europe/Paris"), "{stdout}");
    assert!(stdout.contains(":00:00+00:00") || stdout.contains(":00:00Z"), "next fire shown: {stdout}");
    assert!(calls(&server).await.is_empty());

    ws.write_config(
        &config.replace("agent = \"helper\"\ninput = \"Summarise", "agent = \"ghost\"\ninput = \"Summarise"),
    );
    let out = ws.run(&["schedule"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("schedule.jobs.morning.agent"), "{}", text(&out.stderr));

    ws.write_config(&base_config(&server.uri()));
    let out = ws.run(&["schedule"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("no jobs to schedule"));
}
