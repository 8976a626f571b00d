//! P2: a fan-out of 8 models x 6 lenses through `Runtime::fanout`, mock think time 250 ms,
//! lane capacity 16, against the ideal schedule ceil(48/16) x 250 ms = 750 ms.

use std::time::{Duration, Instant};

use executus::{CellMode, FanoutSpec, Lens, RunnableAgent};

use crate::Opts;
use crate::harness;
use crate::mock::MockConfig;
use crate::mock::child::ChildMock;
use crate::report::{Row, Section, Verdict};
use crate::stats::{ms, percentile};

const MODELS: usize = 8;
const LENSES: usize = 6;
const CAPACITY: usize = 16;
const LATENCY: Duration = Duration::from_millis(250);

fn spec(mode: CellMode) -> FanoutSpec {
    let models = (1..=MODELS).map(|m| format!("{}/model-{m}", harness::PROVIDER)).collect();
    let lenses = (1..=LENSES)
        .map(|l| Lens {
            name: format!("lens-{l}"),
            agent: RunnableAgent::new(format!("lens-{l}"), format!("Review the change for concern {l}."), ""),
        })
        .collect();
    let mut spec = FanoutSpec::new(models, lenses, "Review this diff: +1 line.");
    spec.mode = mode;
    spec
}

/// Runs P2.
///
/// # Errors
/// If the mock or the runtime cannot start, or a swarm fails.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let rounds = if opts.smoke { 1 } else { 11 };
    let cells = MODELS * LENSES;
    let waves = cells.div_ceil(CAPACITY) as u32;
    let ideal = LATENCY * waves;
    let mut section = Section::new(
        "P2",
        format!(
            "fan-out {MODELS} models x {LENSES} lenses, mock latency {} ms, lane capacity {CAPACITY}",
            LATENCY.as_millis()
        ),
    );
    let mock = ChildMock::spawn(&MockConfig { latency: LATENCY, ..MockConfig::default() }).await?;
    let rt = harness::runtime(&mock.url(), CAPACITY, false)?;
    let mut results = Vec::new();
    for mode in [CellMode::Run, CellMode::OneShot] {
        // One warm-up swarm (actors started, connections pooled), then the measured ones.
        swarm(&rt, mode).await?;
        let mut walls = Vec::new();
        let mut peak = 0;
        for _ in 0..rounds {
            mock.reset().await?;
            walls.push(swarm(&rt, mode).await?);
            let snap = mock.snapshot().await?;
            anyhow::ensure!(
                snap.requests == cells as u64,
                "mock saw {} requests, not {cells}",
                snap.requests
            );
            peak = peak.max(snap.max_in_flight);
        }
        results.push((mode, walls, peak));
    }
    for (mode, walls, peak) in &results {
        let w: Vec<f64> = walls.iter().map(|d| ms(*d)).collect();
        let (median, worst) = (percentile(&w, 50.0), percentile(&w, 100.0));
        let ratio = median / ms(ideal);
        let label = match mode {
            CellMode::Run => "swarm wall time, cells as agent runs",
            CellMode::OneShot => "swarm wall time, one-shot cells",
        };
        // A swarm that ran more cells at once than the lane admits would beat the ideal by
        // breaking the bound it is measured against: it fails both rows.
        let within_lane = *peak as usize <= CAPACITY;
        section.rows.push(Row::new(
            label,
            format!("{median:.1} ms median, {worst:.1} ms worst of {rounds} ({ratio:.3} x ideal)"),
            format!("ideal {waves} x {} ms = {:.0} ms", LATENCY.as_millis(), ms(ideal)),
            "<= 1.03 x ideal, within the lane",
            Verdict::of(ratio <= 1.03 && within_lane),
        ));
        section.rows.push(Row::new(
            "  peak concurrent requests at the mock",
            peak.to_string(),
            format!("lane capacity {CAPACITY}"),
            format!("<= {CAPACITY}"),
            Verdict::of(within_lane),
        ));
    }
    section.notes.push(format!(
        "**Method.** One `Runtime` (lane `default` of capacity {CAPACITY}, `streaming = false`) over a \
         mock in a child process that answers every request after {} ms. A swarm is `Runtime::fanout` \
         of {MODELS} model specs (`mock/model-1`..`mock/model-{MODELS}`) x {LENSES} lenses (agents \
         without tools: one model call each); its wall time runs from the `fanout` call to the full \
         matrix, every cell checked to have succeeded. One warm-up swarm, then {rounds} measured; the \
         mock counts requests and the peak in flight, which must not exceed the lane's capacity \
         (a peak above it fails both rows). \
         Both cell modes are shown: `Run` (each cell a full agent run: lane admission, run actor, \
         checkpoints) and `OneShot` (one model call per cell through the lane).",
        LATENCY.as_millis()
    ));
    Ok(section)
}

async fn swarm(rt: &executus::Runtime, mode: CellMode) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let handle = rt.fanout(spec(mode)).await.map_err(anyhow::Error::msg)?;
    let result = handle.result().await.map_err(anyhow::Error::msg)?;
    let wall = t0.elapsed();
    anyhow::ensure!(
        result.failed() == 0,
        "{} of {} cells failed: {:?}",
        result.failed(),
        result.cells.len(),
        { result.cells.iter().find(|c| c.result.is_err()).map(|c| format!("{:?}", c.result)) }
    );
    Ok(wall)
}
