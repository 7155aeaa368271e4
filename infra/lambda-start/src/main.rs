//! `cargo run -p lambda-start -- [--runs N] [--bin-dir DIR] [FUNCTION...]`:
//! size and start-to-ready time of each function's release binary, as a
//! Markdown table (infra/BENCHMARKS.md, "Lambda binaries").

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use lambda_start::{function_env, lambda_env, measure_start, Summary, FUNCTIONS};

#[derive(Parser)]
#[command(about)]
struct Cli {
    /// Starts measured per function (after one unmeasured start that warms
    /// the page cache).
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Where the binaries are (default: $CARGO_TARGET_DIR/release, else target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Extra or overriding variables, NAME=VALUE, for every function.
    #[arg(long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Functions to measure (default: all five).
    functions: Vec<String>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin_dir = cli.bin_dir.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("release")
    });
    let functions = match cli.functions.is_empty() {
        true => FUNCTIONS.iter().map(|f| f.to_string()).collect(),
        false => cli.functions,
    };
    println!("| function | size (MiB) | starts | median (ms) | p90 (ms) | min (ms) | max (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for function in &functions {
        let binary = bin_dir.join(function);
        let size_bytes = std::fs::metadata(&binary)
            .with_context(|| format!("{}", binary.display()))?
            .len();
        let mut env = lambda_env(function);
        env.extend(function_env(function)?);
        env.extend(cli.env.iter().cloned());
        measure_start(&binary, &env).with_context(|| format!("{function}: warm-up start"))?;
        let samples = (0..cli.runs)
            .map(|_| measure_start(&binary, &env))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| function.clone())?;
        let s = Summary::of(&samples).context("--runs must be at least 1")?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {function} | {:.2} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            size_bytes as f64 / (1024.0 * 1024.0),
            s.runs,
            ms(s.median),
            ms(s.p90),
            ms(s.min),
            ms(s.max)
        );
    }
    Ok(())
}
