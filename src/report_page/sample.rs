//! Deterministic, synthetic report data: the fixtures of the page tests, the browser check
//! (`examples/report_sample.rs`) and the screenshot script. The numbers are made up, shaped like a real
//! qlib backtest (IC around 0.03-0.06, returns and drawdowns as fractions), and include failed loops and
//! hostile text (markup in a hypothesis).

use crate::hook::HookReport;

use super::{
    Answer, Attempt, ComparisonPage, Decision, LoopRow, Metrics, Phase, RunPage, Setting,
    SotaFactor, Timing,
};

/// A small reproducible generator (PCG-style LCG), so samples need no dependency and never change.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal noise with mean 0 and deviation 1.
    fn noise(&mut self) -> f64 {
        (0..4).map(|_| self.next()).sum::<f64>() - 2.0
    }
}

const HYPOTHESES: [&str; 6] = [
    "Short-term reversal: stocks that fell most over the last 5 days rebound over the next day.",
    "Volume-price divergence predicts returns: when volume rises while price falls over 10 days, selling pressure is exhausting and the stock tends to mean-revert. Normalise by the 60-day average volume so that large and small caps are comparable, and winsorise at the 1st and 99th percentiles.",
    "Momentum over 20 days, skipping the most recent day to avoid the reversal effect.",
    "Intraday range (high - low) / close as a volatility proxy: low-volatility stocks earn higher risk-adjusted returns.\nCombine with the 20-day turnover rate to separate liquidity from risk.",
    "<script>alert(\"hypothesis\")</script> & a factor named 'x<y' with \"quotes\"",
    "Close-to-VWAP gap: closing above the volume-weighted average price signals informed buying.",
];

const REASONS: [&str; 4] = [
    "IC improved over the SOTA and the annualized return rose; the factor is kept.",
    "The new factor is highly correlated (0.93) with an existing SOTA factor and adds no information; IC fell slightly while the max drawdown grew, so the hypothesis is rejected and the next loop should explore a different data field.",
    "Rank IC is positive but below the SOTA.",
    "Returns improved, but only through higher turnover; cost-adjusted results are worse.",
];

fn phase(
    rng: &mut Rng,
    name: &str,
    loops: u32,
    base_ic: f64,
    failed: &dyn Fn(u32) -> bool,
) -> Phase {
    let mut best = f64::NEG_INFINITY;
    let mut rows = Vec::new();
    let mut sota = None;
    for id in 0..loops {
        let hypothesis = HYPOTHESES[(id as usize * 7 + 3) % HYPOTHESES.len()].to_string();
        if failed(id) {
            rows.push(LoopRow {
                id,
                decision: Decision::Failed,
                hypothesis,
                reason: "The experiment raised an error before the backtest finished; no feedback."
                    .into(),
                metrics: Metrics::default(),
            });
            continue;
        }
        let progress = f64::from(id) / f64::from(loops.max(1));
        let ic = base_ic + 0.025 * progress + 0.008 * rng.noise();
        let accepted = ic > best && rng.next() < 0.8;
        if accepted {
            best = ic;
            sota = Some(id);
        }
        rows.push(LoopRow {
            id,
            decision: if accepted {
                Decision::Accepted
            } else {
                Decision::Rejected
            },
            hypothesis,
            reason: REASONS[if accepted { 0 } else { 1 + id as usize % 3 }].to_string(),
            metrics: Metrics {
                ic: Some(ic),
                icir: Some(ic * 9.0 + 0.04 * rng.noise()),
                rank_ic: Some(ic * 1.08 + 0.004 * rng.noise()),
                annualized_return: Some(ic * 2.4 + 0.02 * rng.noise()),
                max_drawdown: Some(-(0.14 - ic * 1.1 + 0.015 * rng.noise()).max(0.01)),
            },
        });
    }
    Phase {
        name: name.into(),
        loops: rows,
        sota_loop: sota,
    }
}

fn answer(title: &str, log: &str, phase: &Phase, baseline: Option<Metrics>) -> Answer {
    let row = phase.loops.iter().find(|l| Some(l.id) == phase.sota_loop);
    Answer {
        title: title.into(),
        log: log.into(),
        loop_id: phase.sota_loop,
        workspace: format!(
            "git_ignore_folder/RD-Agent_workspace/{:032x}",
            u128::from(phase.sota_loop.unwrap_or(0)) * 0x9e37_79b9_7f4a_7c15
        ),
        metrics: row.map(|r| r.metrics.clone()).unwrap_or_default(),
        baseline,
    }
}

/// A chain run: `factor_loops` factor loops (every 13th from loop 7 failed, and loops 42-44), then
/// `model_loops` model loops (loop 3 failed).
pub fn run(title: &str, seed: u64, factor_loops: u32, model_loops: u32) -> RunPage {
    let mut rng = Rng(seed);
    let factor = phase(&mut rng, "Factor loop", factor_loops, 0.028, &|id| {
        id % 13 == 7 || (42..=44).contains(&id)
    });
    let model = phase(&mut rng, "Model loop", model_loops, 0.045, &|id| id == 3);
    let factor_log = "log/2026-11-29_21-04-11-402913";
    let model_log = "log/2026-11-30_01-22-48-118204";
    let baseline = Metrics {
        ic: Some(0.0391),
        icir: Some(0.3012),
        rank_ic: Some(0.0425),
        annualized_return: Some(0.0812),
        max_drawdown: Some(-0.1173),
    };
    let accepted: Vec<u32> = factor
        .loops
        .iter()
        .filter(|l| l.decision == Decision::Accepted)
        .map(|l| l.id)
        .collect();
    let factor_at = |i: usize| accepted.get(accepted.len().saturating_sub(1 + i)).copied();
    RunPage {
        title: title.into(),
        generated: Some("2026-11-30 02:31:07 UTC".into()),
        commands: vec![
            format!("rdagent fin_factor --loop_n {factor_loops}"),
            format!("rdagent fin_model --loop_n {model_loops}"),
        ],
        settings: vec![
            Setting {
                name: "--factor-loops".into(),
                value: factor_loops.to_string(),
                origin: "flag".into(),
            },
            Setting {
                name: "--model-loops".into(),
                value: model_loops.to_string(),
                origin: "flag".into(),
            },
            Setting {
                name: "--pick".into(),
                value: "sota".into(),
                origin: "default".into(),
            },
            Setting {
                name: "rdagent".into(),
                value: "/opt/conda/envs/rdagent/bin/rdagent".into(),
                origin: "PATH".into(),
            },
            Setting {
                name: "RD_CHAIN_LOG_ROOT".into(),
                value: "log".into(),
                origin: "environment".into(),
            },
        ],
        timings: vec![
            Timing {
                label: "Factor phase".into(),
                seconds: Some(15_517.0),
            },
            Timing {
                label: "Resolve".into(),
                seconds: Some(0.042),
            },
            Timing {
                label: "Model phase".into(),
                seconds: Some(2_418.4),
            },
            Timing {
                label: "Whole chain".into(),
                seconds: Some(17_936.0),
            },
        ],
        attempts: vec![
            Attempt {
                phase: "factor".into(),
                number: 1,
                outcome: "exit 0".into(),
                seconds: Some(15_517.0),
                hook_report_file: None,
            },
            Attempt {
                phase: "model".into(),
                number: 1,
                outcome: "killed by SIGKILL (137)".into(),
                seconds: Some(38.2),
                hook_report_file: Some(
                    "log/rd-chain/20260114-161452.hook.attempt-1/report.tsv".into(),
                ),
            },
            Attempt {
                phase: "model".into(),
                number: 2,
                outcome: "exit 0".into(),
                seconds: Some(2_380.2),
                hook_report_file: Some("log/rd-chain/20260114-161452.hook/report.tsv".into()),
            },
        ],
        hook: Some(Box::new(HookReport {
            armed: 6,
            used: 6,
            shape: Some((245_000, 21)),
            base_features_dropped: 0,
            template_problem: None,
        })),
        answers: vec![
            answer("SOTA factor set", factor_log, &factor, None),
            answer("SOTA model", model_log, &model, Some(baseline)),
        ],
        sota_factors: vec![
            SotaFactor {
                name: "Reversal_5D".into(),
                loop_id: factor_at(3),
                formulation: "-\\frac{close_t - close_{t-5}}{close_{t-5}}".into(),
                description: "Negative 5-day return: losers of the past week.".into(),
            },
            SotaFactor {
                name: "VolPriceDiv_10D".into(),
                loop_id: factor_at(2),
                formulation:
                    "corr(rank(volume), rank(close), 10) \\cdot \\frac{volume_t}{mean(volume, 60)}"
                        .into(),
                description: HYPOTHESES[1].into(),
            },
            SotaFactor {
                name: "Range_Turnover_20D".into(),
                loop_id: factor_at(1),
                formulation: "\\frac{high - low}{close} \\times turnover_{20}".into(),
                description: "Intraday range scaled by 20-day turnover <b>(not bold)</b>.".into(),
            },
            SotaFactor {
                name: "VWAP_Gap".into(),
                loop_id: factor_at(0),
                formulation: "\\frac{close - vwap}{vwap}".into(),
                description: HYPOTHESES[5].into(),
            },
        ],
        phases: vec![factor, model],
    }
}

/// The 100-loop chain with failed loops that the tests, the browser check and the screenshot use.
pub fn run_page() -> RunPage {
    run(
        "Chain 2026-11-29_21-04-11: 100 factor loops, 12 model loops",
        11,
        100,
        12,
    )
}

/// Three runs of different lengths compared.
pub fn comparison_page() -> ComparisonPage {
    ComparisonPage {
        title: "3 runs compared".into(),
        generated: Some("2026-11-30 02:31:07 UTC".into()),
        runs: vec![
            run("2026-11-29 (100 loops)", 11, 100, 12),
            run("2026-11-22 (60 loops)", 23, 60, 10),
            run("2026-11-15 <baseline> (30 loops)", 37, 30, 8),
        ],
    }
}
