//! The daily cron job: registered at 08:00 Europe/Paris, it fires through the real cron
//! runner (a calendar that follows paused tokio time, starting two seconds before 08:00 in
//! Paris), runs the digest persona and delivers its output.

use std::sync::Arc;
use std::time::Duration;

use chatbot::app::{DAILY_JOB, DIGEST_PERSONA, DIGEST_USER};
use chatbot::{App, AppOptions, Stores, models};
use chrono::TimeZone as _;
use executus::ports::ChannelDelivery;
use executus_schedule::ScheduleEvent;
use tokio_util::sync::CancellationToken;

#[tokio::test(start_paused = true)]
async fn the_digest_fires_at_eight_in_paris_and_is_delivered() {
    // 10 March 2025 is before the switch to summer time: Paris is UTC+1, 08:00 is 07:00Z.
    let base = chrono::Utc.with_ymd_and_hms(2025, 3, 10, 6, 59, 58).unwrap();
    let (tx, mut delivered) = tokio::sync::mpsc::channel(4);
    let mut options = AppOptions::new(models::bundled_registry().unwrap(), Stores::in_memory());
    options.delivery = Arc::new(ChannelDelivery(tx));
    options.clock = Some(Arc::new(executus::llm::TokioClock::starting_at(base.timestamp_millis() as u64)));
    let app = App::build(options).await.unwrap();

    let (id, cron, tz, _) = DAILY_JOB;
    let job = app.schedule.job(id).unwrap();
    assert_eq!((job.def().cron.as_str(), job.def().timezone.as_str()), (cron, tz));
    let next = job.next_after(base).unwrap();
    assert_eq!(next, chrono::Utc.with_ymd_and_hms(2025, 3, 10, 7, 0, 0).unwrap());

    let mut events = app.schedule.subscribe();
    let stop = CancellationToken::new();
    let runner = tokio::spawn({
        let runtime = app.runtime.clone();
        let stop = stop.clone();
        async move { runtime.run_schedule(stop).await }
    });
    let item = tokio::time::timeout(Duration::from_secs(30), delivered.recv()).await.unwrap().unwrap();
    assert_eq!(item.agent, DIGEST_PERSONA);
    assert_eq!(item.identity.user, DIGEST_USER);
    assert_eq!(item.status, "completed");
    assert!(item.output.unwrap().starts_with("Good morning, team!"));
    match events.recv().await.unwrap() {
        ScheduleEvent::Fired { job, fire, .. } => {
            assert_eq!(job, id);
            assert_eq!(fire, next);
        }
        other => panic!("expected the fire first, got {other:?}"),
    }
    stop.cancel();
    runner.await.unwrap();
    app.close(Duration::ZERO).await;
}
