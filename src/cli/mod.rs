//! Subcommands of the `mxnet-int8` command-line tool.

mod inspect;
mod run;

use mxnet::{Error, Result};

const USAGE: &str = "usage:
  mxnet-int8 inspect MODEL-symbol.json [MODEL-0000.params]
  mxnet-int8 run MODEL-symbol.json MODEL-0000.params (--input x.npy | --shape 1,3,224,224)
             [--input-name data] [--output y.npy] [--compare FP32-symbol.json FP32.params]
  mxnet-int8 bench MODEL-symbol.json MODEL-0000.params --shape 1,3,224,224 [--runs N] [--warmup N]
             [--profile]";

/// Runs the subcommand named by the first argument.
pub fn dispatch(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("-h") | Some("--help") | Some("help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some("inspect") => inspect::inspect(&args[1..]),
        Some("run") => run::run(&args[1..]),
        Some("bench") => run::bench(&args[1..]),
        Some(other) => Err(Error::invalid(format!(
            "unknown command {other:?}\n{USAGE}"
        ))),
    }
}
