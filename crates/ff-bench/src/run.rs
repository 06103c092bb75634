//! One `ff bench` invocation: every variant `--runs` times, the runs of
//! the variants alternating, then the report.

use std::process::ExitCode;

use anyhow::Context;

use crate::args::BenchArgs;
use crate::ceiling::{self, Ceiling, CeilingCounts};
use crate::harness::{Bed, Target};
use crate::machine;
use crate::markdown;
use crate::opener::Opener;
use crate::progress;
use crate::report::{self, Backend, Report, VariantReport};

/// Runs the benchmark and prints (and with `--markdown` writes) the report.
/// `opener` parses `--database-url` and opens each run's backend.
pub async fn run(args: BenchArgs, opener: &dyn Opener) -> anyhow::Result<ExitCode> {
    let variants = args.scenario.variants(args.limits);
    let sizes = args.sizes();
    let target = Target::new(
        opener,
        args.database_url.as_deref(),
        args.synchronous,
        args.partitions,
    )?;
    if target.is_server() && args.ceiling {
        anyhow::bail!("--ceiling measures raw SQLite; leave it out when benchmarking a server");
    }
    let machine = machine::Machine::detect();
    let steps = variants.len() as u64 * u64::from(args.runs);
    let bar = progress::bar(steps, args.json)?;
    let counts = CeilingCounts {
        single_txns: args.ceiling_txns,
        batched_txns: args.ceiling_txns,
        ..CeilingCounts::default()
    };

    // Runs alternate between the variants (each variant's first run, then
    // each one's second, ...), so a drift of the machine over the
    // invocation weighs on every variant alike.
    let mut runs: Vec<Vec<_>> = variants.iter().map(|_| Vec::new()).collect();
    let mut ceilings: Vec<Vec<_>> = variants.iter().map(|_| Vec::new()).collect();
    let mut described = None;
    for run in 1..=args.runs {
        for (at, variant) in variants.iter().enumerate() {
            let title = format!("{}/{}", variant.scenario(), variant.name());
            if args.ceiling {
                bar.set_message(format!("{title} run {run}/{}: the ceiling", args.runs));
                ceilings[at].push(ceiling::measure(args.synchronous, counts).await?);
            }
            bar.set_message(format!("{title} run {run}/{}", args.runs));
            let bed = Bed::open(opener, &target, variant.scenario()).await?;
            if described.is_none() {
                match bed.backend.describe().await {
                    Ok(description) => described = Some(description),
                    Err(error) => {
                        bed.close().await;
                        return Err(anyhow::Error::from(error).context("describing the backend"));
                    }
                }
            }
            let measured = variant.run(&bed, &sizes).await;
            bed.close().await;
            runs[at].push(measured.with_context(|| format!("{title}, run {run}"))?);
            bar.inc(1);
        }
    }
    let scenarios: Vec<_> = variants
        .iter()
        .zip(runs.iter().zip(&ceilings))
        .map(|(variant, (runs, ceilings))| {
            VariantReport::aggregate(*variant, &sizes, runs, ceilings)
        })
        .collect();
    let all_ceilings: Vec<_> = ceilings.into_iter().flatten().collect();
    bar.finish_and_clear();

    let report = Report {
        command: command_line(opener),
        generated_at: report::utc_now(),
        build: machine::Build::detect(),
        machine,
        backend: match described {
            Some(description) => Backend {
                name: description.name,
                version: description.version,
                database: target.shown.clone(),
                synchronous: description.durability,
            },
            None => anyhow::bail!("no run opened the backend"),
        },
        runs: args.runs,
        sizes,
        ceiling: Ceiling::median_of(&all_ceilings),
        scenarios,
    };
    if args.markdown {
        markdown::write(&report, &args.markdown_dir)?;
        eprintln!(
            "wrote {} and {}",
            args.markdown_dir.join(markdown::PAGE).display(),
            args.markdown_dir.join(markdown::CHART).display()
        );
    }
    if args.json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// This invocation as a command to rerun, the program named `ff`.
fn command_line(opener: &dyn Opener) -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|arg| opener.redact(&arg))
        .collect();
    std::iter::once("ff".to_owned())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}
