//! The `PodRuntime` conformance suite (`pop_core::testing::runtime`) against the process runtime: each
//! behaviour is a POSIX shell command line, run as a real child process. Payloads above 8 KiB travel
//! compressed in 1 000-character chunks; the echoing handler inflates them with perl's core
//! `Compress::Zlib` or python3 (as `examples/handlers/hello.sh` does), and the case is skipped, saying
//! so, on a machine with neither.

use pop_core::registry::HandlerRegistry;
use pop_core::runtime::PodRuntime;
use pop_core::runtime::ProgressUpdate;
use pop_core::testing::runtime::{Behaviour, Capabilities, HandlerDef, RuntimeHarness, Skip};
use pop_handler_protocol::output::{progress_line, result_line};
use pop_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use serde_json::{Map, Value, json};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const COMPRESS_ABOVE: usize = 8 * 1024;

/// A shell word holding `text` exactly.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn print_line(line: &str) -> String {
    format!("printf '%s\\n' {}", quoted(line))
}

/// Sets `json` to the payload's JSON, in either form.
const READ_PAYLOAD: &str = r#"
if [ "${POP_PAYLOAD_TYPE:-envVar}" = compressedEnvVar ]; then
    i=0
    data=""
    while eval "[ -n \"\${POP_COMPRESSED_PAYLOAD_$i+x}\" ]"; do
        eval "data=\"\$data\${POP_COMPRESSED_PAYLOAD_$i}\""
        i=$((i + 1))
    done
    if perl -MCompress::Zlib -e1 2>/dev/null; then
        json=$(printf '%s' "$data" | base64 -d | perl -MCompress::Zlib -e 'undef $/; print uncompress(<STDIN>)')
    else
        json=$(printf '%s' "$data" | base64 -d | python3 -c 'import sys, zlib; sys.stdout.write(zlib.decompress(sys.stdin.buffer.read()).decode())')
    fi
else
    json=$PAYLOAD
fi
"#;

fn script(behaviour: &Behaviour) -> Result<String, Skip> {
    Ok(match behaviour {
        Behaviour::Succeed(output) => print_line(&result_line(output)),
        Behaviour::ProgressThenSucceed { percents, output } => {
            let mut lines: Vec<String> = percents
                .iter()
                .map(|p| {
                    print_line(&progress_line(&ProgressUpdate { percent_complete: Some(*p), ..Default::default() }))
                })
                .collect();
            lines.push(print_line(&result_line(output)));
            lines.join("\n")
        }
        Behaviour::Fail { exit_code, diagnostic } => format!("{} >&2\nexit {exit_code}", print_line(diagnostic)),
        Behaviour::HangUntilCancelled => "exec sleep 3600".to_string(),
        Behaviour::EchoPayload => format!("{READ_PAYLOAD}\nprintf 'POP_RESULT %s\\n' \"$json\""),
        Behaviour::EchoEnv => concat!(
            r#"printf 'POP_RESULT {"agendaId":"%s","cid":"%s","customerId":"%s","operationName":"%s","operationId":"%s","lastProgress":%s}\n' "#,
            r#""$AGENDA_ID" "$CID" "$CUSTOMER_ID" "$OPERATION_NAME" "$OPERATION_ID" "${LAST_PROGRESS:-null}""#
        )
        .to_string(),
        other => return Err(Skip::because(format!("the process harness has no shell handler for {other:?}"))),
    })
}

fn can_inflate() -> bool {
    let ok = |program: &str, args: &[&str]| {
        Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    ok("perl", &["-MCompress::Zlib", "-e1"]) || ok("python3", &["-c", "import zlib"])
}

struct ProcessHarness {
    inflate: bool,
}

#[async_trait::async_trait]
impl RuntimeHarness for ProcessHarness {
    async fn runtime(&self, handlers: &[HandlerDef]) -> Result<Arc<dyn PodRuntime>, Skip> {
        let mut doc = Map::new();
        for def in handlers {
            let command = json!({"command": "/bin/sh", "args": ["-c", script(&def.behaviour)?]});
            doc.insert(def.operation_type.clone(), json!({"process": command}));
        }
        let registry = HandlerRegistry::from_value(Value::Object(doc), "conformance")
            .map_err(|e| Skip::because(format!("the harness's registry does not load: {e}")))?;
        let config = ProcessRuntimeConfig::default()
            .compress_threshold(COMPRESS_ABOVE)
            .chunk_size(1000)
            .kill_grace(Duration::from_millis(300))
            .drain_timeout(Duration::from_millis(500));
        Ok(Arc::new(ProcessRuntime::with_config(registry, config)))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compressed_payload_above: if self.inflate {
                Ok(COMPRESS_ABOVE)
            } else {
                Err(Skip::because(
                    "neither perl's Compress::Zlib nor python3 is installed to inflate a payload in a shell handler",
                ))
            },
            exit_codes: Ok(()),
        }
    }
}

pop_core::runtime_conformance!(async { Arc::new(ProcessHarness { inflate: can_inflate() }) });
