//! Finding a Python that has PySyncObj, and the PySyncObj member script.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::cluster::System;

/// `bench/pysyncobj/node.py`, carried in the binary so that it runs from anywhere.
const NODE_PY: &str = include_str!("../../../bench/pysyncobj/node.py");

/// The version the baseline measured.
const BASELINE_VERSION: &str = "0.3.17";

/// The member script written out for this process; removed when dropped.
pub(crate) struct Script {
    dir: PathBuf,
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Finds a Python with PySyncObj and `cryptography` (`--python`, else `python3`, else `python`)
/// and writes the member script; a clear error saying how to install them if none has them.
pub(crate) fn pysyncobj(python: Option<&Path>) -> Result<(System, Script), Error> {
    let candidates: Vec<PathBuf> = match python {
        Some(p) => vec![p.to_owned()],
        None => vec!["python3".into(), "python".into()],
    };
    let probe = "import importlib.metadata as m, pysyncobj, cryptography; \
                 print(m.version('pysyncobj'))";
    let mut tried = Vec::new();
    for candidate in candidates {
        let output = Command::new(&candidate).args(["-c", probe]).output();
        match output {
            Ok(out) if out.status.success() => {
                let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if version != BASELINE_VERSION {
                    eprintln!(
                        "syncobj-bench: {} has PySyncObj {version}; the baseline measured \
                         {BASELINE_VERSION}",
                        candidate.display()
                    );
                }
                let dir =
                    std::env::temp_dir().join(format!("syncobj-bench-py-{}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                let script = dir.join("node.py");
                std::fs::write(&script, NODE_PY)?;
                let system = System::PySyncObj {
                    python: candidate,
                    script,
                };
                return Ok((system, Script { dir }));
            }
            Ok(out) => tried.push(format!(
                "{}: {}",
                candidate.display(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            )),
            Err(e) => tried.push(format!("{}: {e}", candidate.display())),
        }
    }
    Err(format!(
        "no Python with PySyncObj and cryptography was found ({}).\n\
         Install them with:  pip install pysyncobj=={BASELINE_VERSION} cryptography\n\
         or name the Python that has them with --python PATH",
        tried.join("; ")
    )
    .into())
}
