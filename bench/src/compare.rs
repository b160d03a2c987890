//! The same 住民票の写し rendered by this engine, by Typst and by headless Chromium, side by side in one run.
//!
//! Every document n gets its own data (certificate id, birth days and house number depend on n), the same
//! for all three renderers, so no renderer can answer from a cache of the previous document. Each round
//! renders document n once with every contender in turn (the order rotates), so the noise of this shared
//! machine hits them alike. Warm contenders keep one process for the whole run (the engine in this
//! process, Typst as a library in one Python process, Chromium with one reused page); cold contenders
//! start a process per document (`typst compile`, `chromium --print-to-pdf`, and `bcl-bench
//! render-one` for the engine), which is what a script calling a CLI per certificate pays.
//!
//!   bcl-bench compare [--runs 40] [--cold-runs 8] [--out out/bench/compare] [--png docs/comparison]
//!
//! Needs what `bench/setup.sh` installs (chromium, the PyPI `typst` package, playwright-core under
//! target/compare-node, optionally the `typst` CLI); a contender whose tool is missing is reported as
//! missing, not silently skipped.

use crate::render::sample_record;
use crate::stats::Summary;
use bcl_engine::render::{PdfMeta, Renderer};
use bcl_engine::secrets::MasterSecret;
use bcl_projections::record::{Date, ResidentRecordCertificate, Sex};
use bcl_projections::JstDateTime;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const FONT_DIRS: [&str; 3] = [
    "/usr/share/fonts/truetype/ipamj",
    "/usr/share/fonts/opentype/ipaexfont-gothic",
    "/usr/share/fonts/opentype/ipaexfont-mincho",
];

/// Document `n`: the four-person household of the render benchmark, with the details that differ
/// between real certificates made to depend on `n`.
pub fn document(n: usize) -> ResidentRecordCertificate {
    let mut r = sample_record(4);
    r.certificate_id = format!("131016-{:020X}", 0x0123_4567_89AB_u64 + n as u64);
    r.address = format!("東京都千代田区神田神保町二丁目{}番地３", to_fullwidth(n % 40 + 1));
    for (i, p) in r.persons.iter_mut().enumerate() {
        p.birth_date.day = 1 + ((n + 7 * i) % 28) as u32;
    }
    r
}

fn to_fullwidth(n: usize) -> String {
    n.to_string().chars().map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap_or(c)).collect()
}

/// 和暦 as the engine prints it (明治 and 大正 do not occur in these documents).
fn era(d: Date) -> String {
    let key = (d.year, d.month, d.day);
    let (name, first) = if key >= (2019, 5, 1) {
        ("令和", 2019)
    } else if key >= (1989, 1, 8) {
        ("平成", 1989)
    } else {
        ("昭和", 1926)
    };
    let y = d.year - first + 1;
    let y = if y == 1 { "元".to_string() } else { y.to_string() };
    format!("{name}{y}年{}月{}日", d.month, d.day)
}

/// The data every alternative renders, as the JSON the Typst template reads.
fn data_json(r: &ResidentRecordCertificate) -> serde_json::Value {
    let persons: Vec<_> = r
        .persons
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": format!("{}　{}", p.family_name, p.given_name),
                "kana": format!("{}　{}", p.family_name_kana, p.given_name_kana),
                "birth": era(p.birth_date),
                "sex": if p.sex == Sex::Male { "男" } else { "女" },
                "resident_since": era(p.resident_since),
                "address_since": era(p.address_since),
                "relationship": p.relationship.clone().unwrap_or_default(),
                "previous_address": p.previous_address.clone().unwrap_or_default(),
                "domicile": p.registered_domicile.clone().unwrap_or_default(),
                "domicile_head": p.domicile_head.clone().unwrap_or_default(),
            })
        })
        .collect();
    serde_json::json!({
        "municipality": r.municipality.name,
        "sheet_mark": "1 枚中 1 枚目",
        "address": r.address,
        "household_head": r.household_head_name.clone().unwrap_or_default(),
        "persons": persons,
        "certification": "この写しは、世帯全員の住民票の原本と相違ないことを証明する。",
        "issued_on": era(r.issued_on),
        "mayor": format!("{}　{}", r.municipality.mayor_title, r.municipality.mayor_name),
        "certificate_id": r.certificate_id,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The same page as HTML + CSS for Chromium's print-to-PDF, as near as CSS allows to the engine's layout.
pub fn html(r: &ResidentRecordCertificate) -> String {
    let d = data_json(r);
    let s = |v: &serde_json::Value| esc(v.as_str().unwrap_or_default());
    let mut persons = String::new();
    for (i, p) in d["persons"].as_array().into_iter().flatten().enumerate() {
        persons.push_str(&format!(
            r#"<table class="person"><colgroup><col style="width:18pt"><col style="width:70pt"><col style="width:176pt"><col style="width:70pt"><col><col style="width:34pt"><col style="width:40pt"></colgroup>
<tr class="name"><td rowspan="5" class="idx">{idx}</td><th>氏　　名</th><td><div class="kana">{kana}</div><div class="nm">{name}</div></td><th>生年月日</th><td>{birth}</td><th>性 別</th><td class="c">{sex}</td></tr>
<tr><th>住民となった日</th><td>{rs}</td><th>住所を定めた日</th><td colspan="3">{as_}</td></tr>
<tr><th>続　　柄</th><td>{rel}</td><th>個人番号</th><td colspan="3"></td></tr>
<tr><th>前 住 所</th><td colspan="5">{prev}</td></tr>
<tr><th>本　　籍</th><td colspan="2">{dom}</td><th>筆 頭 者</th><td colspan="2">{head}</td></tr></table>
"#,
            idx = i + 1,
            kana = s(&p["kana"]),
            name = s(&p["name"]),
            birth = s(&p["birth"]),
            sex = s(&p["sex"]),
            rs = s(&p["resident_since"]),
            as_ = s(&p["address_since"]),
            rel = s(&p["relationship"]),
            prev = s(&p["previous_address"]),
            dom = s(&p["domicile"]),
            head = s(&p["domicile_head"]),
        ));
    }
    format!(
        r#"<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>住民票の写し</title><style>
@page {{ size: A4; margin: 34pt 42.5pt 24pt 42.5pt; }}
* {{ -webkit-print-color-adjust: exact; print-color-adjust: exact; box-sizing: border-box; }}
body {{ margin: 0; font-family: "IPAmjMincho", "IPAexMincho", serif; font-size: 9.5pt; }}
.sheet {{ height: 783pt; display: flex; flex-direction: column; }}
.top {{ display: flex; justify-content: space-between; font-size: 10pt; }}
h1 {{ font-family: "IPAexGothic", sans-serif; font-size: 22pt; font-weight: normal; letter-spacing: 8pt; text-align: center; margin: 14pt 0 6pt; }}
table {{ width: 100%; border-collapse: collapse; table-layout: fixed; }}
td, th {{ border: 0.5pt solid #000; padding: 0 4pt; height: 20pt; text-align: left; font-weight: normal; white-space: nowrap; overflow: hidden; }}
th {{ background: #ededed; font-size: 8pt; text-align: center; }}
.household th {{ font-size: 9pt; width: 70pt; }} .household .addr {{ font-size: 11pt; height: 28pt; }}
.household {{ border: 1.2pt solid #000; margin-bottom: 8pt; }}
.person {{ margin-top: -0.5pt; }} .person tr.name td, .person tr.name th {{ height: 38pt; }}
.idx, .c {{ text-align: center; }} .kana {{ font-size: 7pt; }} .nm {{ font-size: 13pt; }}
.blank {{ text-align: center; margin-top: 6pt; }} .grow {{ flex: 1; }}
.cert {{ font-size: 10.5pt; margin-left: 12pt; }} .date {{ font-size: 10.5pt; margin: 8pt 0 4pt 24pt; }}
.mayor {{ font-size: 13pt; text-align: right; margin-right: 20pt; }}
.foot {{ border-top: 0.5pt solid #000; margin-top: 10pt; padding-top: 2pt; font-size: 7.5pt; }} .foot div + div {{ font-size: 7pt; }}
</style></head><body><div class="sheet">
<div class="top"><span>{muni}</span><span>{mark}</span></div>
<h1>住民票の写し</h1>
<table class="household"><tr><th>住　　所</th><td class="addr">{addr}</td></tr><tr><th>世 帯 主</th><td>{hh}</td></tr></table>
{persons}<div class="grow"></div>
<div class="cert">{cert}</div><div class="date">{date}</div><div class="mayor">{mayor}</div>
<div class="foot"><div>証明書番号 {cid}</div><div>裏面には、この面の内容を暗号化した画像（スクランブル画像）を印刷しています。</div></div>
</div></body></html>
"#,
        muni = s(&d["municipality"]),
        mark = s(&d["sheet_mark"]),
        addr = s(&d["address"]),
        hh = s(&d["household_head"]),
        cert = s(&d["certification"]),
        date = s(&d["issued_on"]),
        mayor = s(&d["mayor"]),
        cid = s(&d["certificate_id"]),
    )
}

/// A long-running worker speaking the one-line protocol of bench/compare/*_worker.*.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(mut cmd: Command) -> Result<Worker, String> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{cmd:?}: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let _ = child.kill();
            return Err(format!("{cmd:?} did not start (said {line:?})"));
        }
        Ok(Worker { child, stdin, stdout })
    }

    /// Sends one job and waits for its "ok BYTES".
    fn render(&mut self, job: &serde_json::Value) -> Result<u64, String> {
        writeln!(self.stdin, "{job}").map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        line.trim().strip_prefix("ok ").and_then(|b| b.parse().ok()).ok_or_else(|| format!("worker answered {line:?}"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_cold(mut cmd: Command) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")))
    }
}

/// One contender: its samples, the size of its PDF of document 0, and where that PDF is.
struct Contender {
    name: &'static str,
    samples: Vec<Duration>,
    first_pdf: Option<PathBuf>,
    bytes: Option<u64>,
    error: Option<String>,
}

impl Contender {
    fn new(name: &'static str) -> Self {
        Contender { name, samples: Vec::new(), first_pdf: None, bytes: None, error: None }
    }

    /// Times `f` (which writes `pdf`) unless this contender already failed.
    fn time(&mut self, pdf: &Path, f: impl FnOnce() -> Result<(), String>) {
        if self.error.is_some() {
            return;
        }
        let t = Instant::now();
        match f() {
            Ok(()) => {
                self.samples.push(t.elapsed());
                if self.first_pdf.is_none() {
                    self.bytes = std::fs::metadata(pdf).ok().map(|m| m.len());
                    self.first_pdf = Some(pdf.to_path_buf());
                }
            }
            Err(e) => self.error = Some(e),
        }
    }
}

fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let home_cargo = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&path).chain(home_cargo).map(|d| d.join(name)).find(|p| p.is_file())
}

/// `bcl-bench render-one N OUT`: the engine as a cold CLI (process start, font loading, one front).
pub fn render_one(args: &[String]) {
    let n: usize = args.first().and_then(|a| a.parse().ok()).expect("render-one N OUT");
    let out = args.get(1).expect("render-one N OUT");
    let renderer = Renderer::load_default().expect("fonts (run scripts/setup.sh)");
    let list = renderer.layout_resident_record(&document(n)).expect("layout");
    std::fs::write(out, renderer.write_pdf(&list, &[], &PdfMeta::default()).expect("pdf")).expect("write");
}

pub fn run(args: &[String]) {
    let runs: usize = crate::arg(args, "--runs", 40);
    let cold_runs: usize = crate::arg(args, "--cold-runs", 8).min(runs);
    let out: PathBuf = crate::arg(args, "--out", PathBuf::from("out/bench/compare"));
    let png: Option<PathBuf> = args.windows(2).find(|w| w[0] == "--png").map(|w| PathBuf::from(&w[1]));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let compare_dir = repo.join("bench/compare");
    let template = compare_dir.join("resident_record.typ");
    std::fs::create_dir_all(&out).expect("create output directory");
    let out = out.canonicalize().expect("output directory");

    let renderer = Renderer::load_default().expect("fonts (run scripts/setup.sh)");
    let secret = MasterSecret::from_bytes([7; 32]);
    let issued_at = JstDateTime::parse_rfc3339("2026-04-01T10:00:00+09:00").unwrap();
    let node_modules = repo.join("target/compare-node/node_modules/playwright-core");
    let chromium = tool("chromium");
    let typst_cli = tool("typst");

    let mut typst_lib = Worker::start({
        let mut c = Command::new("python3");
        c.arg(compare_dir.join("typst_worker.py")).arg(&template).args(FONT_DIRS);
        c
    });
    let mut chrome_warm = match &chromium {
        Some(path) => Worker::start({
            let mut c = Command::new("node");
            c.arg(compare_dir.join("chromium_worker.cjs")).env("PLAYWRIGHT_CORE", &node_modules).env("CHROMIUM", path);
            c
        }),
        None => Err("chromium not installed (bench/setup.sh)".into()),
    };

    let mut cs = vec![
        Contender::new("bcl engine: front (layout + vector PDF), in process"),
        Contender::new("bcl engine: whole certificate (front + scrambled back), in process"),
        Contender::new("Typst library, warm (one Compiler, PyPI typst)"),
        Contender::new("Chromium, warm (playwright-core, one page reused)"),
        Contender::new("bcl engine: cold process per document (bcl-bench render-one)"),
        Contender::new("Typst CLI, cold process per document (typst compile)"),
        Contender::new("Chromium CLI, cold process per document (--headless --print-to-pdf)"),
    ];
    if let Err(e) = &typst_lib {
        cs[2].error = Some(e.clone());
    }
    if let Err(e) = &chrome_warm {
        cs[3].error = Some(e.clone());
    }
    if typst_cli.is_none() {
        cs[5].error = Some("typst CLI not installed (bench/setup.sh: cargo install typst-cli)".into());
    }
    if chromium.is_none() {
        cs[6].error = Some("chromium not installed (bench/setup.sh)".into());
    }
    let me = std::env::current_exe().expect("own path");

    for n in 0..runs {
        let doc = document(n);
        let data = data_json(&doc).to_string();
        let html_path = out.join(format!("doc-{n}.html"));
        std::fs::write(&html_path, html(&doc)).expect("write html");
        let contenders = if n < cold_runs { cs.len() } else { 4 };
        for k in 0..contenders {
            // Rotate the order every round so no contender always runs right after another's cache misses.
            let i = (k + n) % contenders;
            let pdf = out.join(format!("{i}-doc-{n}.pdf"));
            let c = &mut cs[i];
            match i {
                0 => c.time(&pdf, || {
                    let list = renderer.layout_resident_record(&doc).map_err(|e| e.to_string())?;
                    let bytes = renderer.write_pdf(&list, &[], &PdfMeta::default()).map_err(|e| e.to_string())?;
                    std::fs::write(&pdf, bytes).map_err(|e| e.to_string())
                }),
                1 => c.time(&pdf, || {
                    let r = bcl_engine::certificate::render_resident_record(&renderer, &secret, &doc, issued_at)
                        .map_err(|e| e.to_string())?;
                    std::fs::write(&pdf, r.pdf).map_err(|e| e.to_string())
                }),
                2 => {
                    let w = typst_lib.as_mut().expect("checked above");
                    let job = serde_json::json!({"data": data, "out": pdf});
                    c.time(&pdf, || w.render(&job).map(drop))
                }
                3 => {
                    let w = chrome_warm.as_mut().expect("checked above");
                    let job = serde_json::json!({"html": html_path, "out": pdf});
                    c.time(&pdf, || w.render(&job).map(drop))
                }
                4 => c.time(&pdf, || {
                    let mut cmd = Command::new(&me);
                    cmd.arg("render-one").arg(n.to_string()).arg(&pdf);
                    run_cold(cmd)
                }),
                5 => c.time(&pdf, || {
                    let mut cmd = Command::new(typst_cli.as_ref().expect("checked above"));
                    cmd.arg("compile").arg("--root").arg(&compare_dir).arg("--input").arg(format!("data={data}"));
                    for dir in FONT_DIRS {
                        cmd.arg("--font-path").arg(dir);
                    }
                    cmd.arg(&template).arg(&pdf);
                    run_cold(cmd)
                }),
                _ => c.time(&pdf, || {
                    let mut cmd = Command::new(chromium.as_ref().expect("checked above"));
                    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer"])
                        .arg(format!("--print-to-pdf={}", pdf.display()))
                        .arg(format!("file://{}", html_path.display()));
                    run_cold(cmd)
                }),
            }
        }
    }
    drop(typst_lib);
    drop(chrome_warm);

    let base = cs[0].samples.clone();
    let base_p50 = Summary { name: String::new(), samples: base }.percentile(0.5).as_secs_f64();
    println!(
        "\n### Rendering one 住民票の写し: this engine, Typst, Chromium (`bcl-bench compare --runs {runs} --cold-runs {cold_runs}`)\n"
    );
    println!("| renderer | runs | p50 ms | p90 ms | min ms | p50 ÷ engine front p50 | PDF bytes (doc 0) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for c in &cs {
        if let Some(e) = &c.error {
            println!("| {} | — | — | — | — | — | not measured: {} |", c.name, e.replace('|', "/"));
            continue;
        }
        let s = Summary { name: c.name.to_string(), samples: c.samples.clone() };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let p50 = s.percentile(0.5);
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.0}× | {} |",
            c.name,
            c.samples.len(),
            ms(p50),
            ms(s.percentile(0.9)),
            ms(*c.samples.iter().min().expect("measured")),
            p50.as_secs_f64() / base_p50,
            c.bytes.map_or("?".into(), |b| b.to_string())
        );
    }
    if let Some(dir) = png {
        std::fs::create_dir_all(&dir).expect("create png directory");
        // The warm contender's PDF, or the cold one's when the warm one could not run.
        for (warm, cold, name) in [(0, 4, "bcl"), (2, 5, "typst"), (3, 6, "chromium")] {
            let Some(pdf) = cs[warm].first_pdf.as_ref().or(cs[cold].first_pdf.as_ref()) else { continue };
            let prefix = dir.join(format!("{name}-page1"));
            let status = Command::new("pdftoppm")
                .args(["-r", "80", "-f", "1", "-l", "1", "-png", "-singlefile"])
                .arg(pdf)
                .arg(&prefix)
                .status();
            match status {
                Ok(s) if s.success() => println!("first page: {}.png", prefix.display()),
                _ => println!("pdftoppm failed for {}", pdf.display()),
            }
        }
    }
}
