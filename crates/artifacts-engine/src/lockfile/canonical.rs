//! Reads `artifacts.lock` as [`super::Lock::save`] writes it, line by line,
//! without serde_json: a fleet's lock is megabytes, read by every command.
//!
//! Only that exact text is read here: version 2, serde_json's pretty layout
//! (two-space indents, `": "`, a comma after every item but the last), each
//! key once, fields in their declared order, no escapes, no control
//! characters, UTF-8. Anything else (a file written by hand or by another
//! tool, version 1, invalid JSON, a key twice) gives `None`, and the caller
//! reads it with serde_json, whose result and errors stay the reference. So
//! what is read here, keys sorted, is what saving writes back byte for byte.
//!
//! Every string value and artifact name is read once and shared: across a
//! fleet's targets the same artifact has the same digests, backend and
//! placement (the same paths and modes), and one run stamps its generations
//! with a handful of times.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use super::{Entries, LockEntry, Provenance, Sorted};

/// The entries of `input` when it is the text [`super::Lock::save`] writes,
/// else `None`. Errors are those of reading.
pub(super) fn read(input: impl Read) -> io::Result<Option<Entries>> {
    let mut reader = Reader {
        input,
        bytes: Vec::with_capacity(CHUNK),
        text: String::with_capacity(CHUNK),
        at: 0,
        line: 0..0,
        shared: Shared::default(),
    };
    match reader.lock() {
        Ok(entries) => Ok(Some(entries)),
        Err(Stop::Other) => Ok(None),
        Err(Stop::Io(e)) => Err(e),
    }
}

/// Why reading stopped.
enum Stop {
    /// The text is not what `save` writes: serde_json's to read.
    Other,
    /// Reading failed.
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

type Step<T> = Result<T, Stop>;

/// The fields of [`LockEntry`], in the order they are written.
const FIELDS: [&str; 9] = [
    "fingerprint",
    "generator",
    "placement",
    "backend",
    "dependencies",
    "generated_at",
    "extra",
    "incomplete",
    "provenance",
];

/// A [`LockEntry`] being read, but its fingerprint.
#[derive(Default)]
struct Fields {
    generator: Option<Arc<str>>,
    placement: Option<Arc<str>>,
    backend: Option<Arc<str>>,
    dependencies: BTreeMap<String, Option<String>>,
    generated_at: Option<Arc<str>>,
    extra: BTreeMap<String, String>,
    incomplete: bool,
    provenance: Option<Provenance>,
}

/// How much is read at a time: the text is never held whole.
const CHUNK: usize = 16 * 1024;

/// Text read once and shared, by its content.
type Shared = HashSet<Arc<str>, foldhash::fast::RandomState>;

struct Reader<R> {
    input: R,
    /// Read and not yet in `text`: the start of a line.
    bytes: Vec<u8>,
    /// Whole lines, checked: UTF-8, no escapes, no control characters.
    text: String,
    /// Where the next line starts in `text`.
    at: usize,
    /// The current line in `text`, without its newline.
    line: Range<usize>,
    shared: Shared,
}

/// `line` as `<indent spaces>"key": rest`.
fn item(line: &str, indent: usize) -> Option<(&str, &str)> {
    let (spaces, line) = line.split_at_checked(indent)?;
    if spaces.bytes().any(|b| b != b' ') {
        return None;
    }
    let (key, rest) = quoted(line)?;
    Some((key, rest.strip_prefix(": ")?))
}

/// `rest` as `"value"` then what follows it.
fn string(rest: &str) -> Option<(&str, &str)> {
    quoted(rest)
}

/// `text` as `"quoted"` then what follows it: without escapes, the first
/// quote after the opening one closes.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('"')?;
    let end = memchr::memchr(b'"', text.as_bytes())?;
    Some((&text[..end], &text[end + 1..]))
}

/// Whether what follows an item ends its map: nothing does, a comma does not.
fn last(after: &str) -> Step<bool> {
    match after {
        "" => Ok(true),
        "," => Ok(false),
        _ => Err(Stop::Other),
    }
}

/// The items of a map sorted by key (as `save` writes them, but a script
/// may not); a key twice is serde_json's to judge.
fn sorted<K: Ord, V>(mut items: Vec<(K, V)>) -> Step<Vec<(K, V)>> {
    if !items.is_sorted_by(|a, b| a.0 < b.0) {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        if items.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(Stop::Other);
        }
    }
    Ok(items)
}

impl<R: Read> Reader<R> {
    /// The current line.
    fn line(&self) -> &str {
        &self.text[self.line.clone()]
    }

    /// Moves to the next line: a whole one (the file ends with a newline).
    fn next(&mut self) -> Step<()> {
        if self.at == self.text.len() {
            self.refill()?;
        }
        let end = self.at
            + memchr::memchr(b'\n', &self.text.as_bytes()[self.at..])
                .expect("`text` holds whole lines");
        self.line = self.at..end;
        self.at = end + 1;
        Ok(())
    }

    /// Puts the next whole lines read into `text`, checked a chunk at a time.
    fn refill(&mut self) -> Step<()> {
        loop {
            if let Some(last) = memchr::memrchr(b'\n', &self.bytes) {
                let lines = &self.bytes[..=last];
                // Branch-free, so it runs many bytes at a time.
                let odd = lines.iter().fold(false, |odd, &b| {
                    odd | ((b < 0x20) & (b != b'\n')) | (b == b'\\')
                });
                let lines = std::str::from_utf8(lines).map_err(|_| Stop::Other)?;
                if odd {
                    return Err(Stop::Other);
                }
                self.text.clear();
                self.text.push_str(lines);
                self.at = 0;
                self.bytes.drain(..=last);
                return Ok(());
            }
            // A last line without newline is not what `save` writes.
            if self.more()? == 0 {
                return Err(Stop::Other);
            }
        }
    }

    /// Reads up to a chunk more into `bytes`: how many.
    fn more(&mut self) -> Step<usize> {
        let mut chunk = (&mut self.input).take(CHUNK as u64);
        Ok(chunk.read_to_end(&mut self.bytes)?)
    }

    /// Reads a line that must be `expected`.
    fn expect(&mut self, expected: &str) -> Step<()> {
        self.next()?;
        if self.line() == expected {
            Ok(())
        } else {
            Err(Stop::Other)
        }
    }

    /// Reads the closing line of a map at `indent`: whether it was the last
    /// item of the map around it.
    fn close(&mut self, indent: usize) -> Step<bool> {
        self.next()?;
        let (spaces, rest) = self.line().split_at_checked(indent).ok_or(Stop::Other)?;
        if spaces.bytes().any(|b| b != b' ') {
            return Err(Stop::Other);
        }
        last(rest.strip_prefix('}').ok_or(Stop::Other)?)
    }

    fn lock(&mut self) -> Step<Entries> {
        self.expect("{")?;
        self.expect("  \"version\": 2,")?;
        self.next()?;
        let entries = match self.line() {
            "  \"entries\": {}" => Sorted::new(),
            "  \"entries\": {" => {
                let entries = self.scopes()?;
                if !self.close(2)? {
                    return Err(Stop::Other);
                }
                entries
            }
            _ => return Err(Stop::Other),
        };
        self.expect("}")?;
        if self.at != self.text.len() || !self.bytes.is_empty() || self.more()? != 0 {
            return Err(Stop::Other);
        }
        Ok(entries)
    }

    fn scopes(&mut self) -> Step<Entries> {
        let mut scopes: Vec<(Arc<str>, Sorted<LockEntry>)> = Vec::new();
        loop {
            self.next()?;
            let (scope, "{") = item(self.line(), 4).ok_or(Stop::Other)? else {
                return Err(Stop::Other);
            };
            let scope = Arc::from(scope);
            let artifacts = self.artifacts()?;
            scopes.push((scope, artifacts));
            if self.close(4)? {
                return Ok(Sorted(sorted(scopes)?));
            }
        }
    }

    fn artifacts(&mut self) -> Step<Sorted<LockEntry>> {
        let mut artifacts: Vec<(Arc<str>, LockEntry)> = Vec::new();
        loop {
            self.next()?;
            let (artifact, "{") = item(&self.text[self.line.clone()], 6).ok_or(Stop::Other)? else {
                return Err(Stop::Other);
            };
            let artifact = share(&mut self.shared, artifact);
            let entry = self.entry()?;
            artifacts.push((artifact, entry));
            if self.close(6)? {
                artifacts.shrink_to_fit();
                return Ok(Sorted(sorted(artifacts)?));
            }
        }
    }

    fn entry(&mut self) -> Step<LockEntry> {
        let mut fingerprint = None;
        // All but the fingerprint, which has no default.
        let mut entry = Fields::default();
        // Fields come in declared order, each once.
        let mut next_field = 0;
        loop {
            self.next()?;
            let (name, rest) = item(&self.text[self.line.clone()], 8).ok_or(Stop::Other)?;
            let field = FIELDS
                .iter()
                .position(|f| *f == name)
                .filter(|&field| field >= next_field)
                .ok_or(Stop::Other)?;
            next_field = field + 1;
            let after = match FIELDS[field] {
                "dependencies" | "extra" if rest == "{" => {
                    let nulls = FIELDS[field] == "dependencies";
                    let labels = self.labels(nulls)?;
                    if nulls {
                        entry.dependencies = labels.into_iter().collect();
                    } else {
                        entry.extra = labels
                            .into_iter()
                            .map(|(k, v)| Some((k, v?)))
                            .collect::<Option<_>>()
                            .ok_or(Stop::Other)?;
                    }
                    // The closing line of the labels ends the field.
                    if self.close(8)? {
                        break;
                    }
                    continue;
                }
                "incomplete" => {
                    entry.incomplete = true;
                    rest.strip_prefix("true").ok_or(Stop::Other)?
                }
                "provenance" => {
                    let (word, after) = string(rest).ok_or(Stop::Other)?;
                    entry.provenance = Some(match word {
                        "set" => Provenance::Set,
                        "edited" => Provenance::Edited,
                        "imported" => Provenance::Imported,
                        _ => return Err(Stop::Other),
                    });
                    after
                }
                name => {
                    let (value, after) = string(rest).ok_or(Stop::Other)?;
                    let value = share(&mut self.shared, value);
                    match name {
                        "fingerprint" => fingerprint = Some(value),
                        "generator" => entry.generator = Some(value),
                        "placement" => entry.placement = Some(value),
                        "backend" => entry.backend = Some(value),
                        "generated_at" => entry.generated_at = Some(value),
                        _ => return Err(Stop::Other),
                    }
                    after
                }
            };
            if last(after)? {
                break;
            }
        }
        Ok(LockEntry {
            fingerprint: fingerprint.ok_or(Stop::Other)?,
            generator: entry.generator,
            placement: entry.placement,
            backend: entry.backend,
            dependencies: entry.dependencies,
            generated_at: entry.generated_at,
            extra: entry.extra,
            incomplete: entry.incomplete,
            provenance: entry.provenance,
        })
    }

    /// The items of a `dependencies` or `extra` map, values `None` for
    /// `null` (when `nulls`); never empty, as `save` leaves empty ones out.
    fn labels(&mut self, nulls: bool) -> Step<Vec<(String, Option<String>)>> {
        let mut labels: Vec<(String, Option<String>)> = Vec::new();
        loop {
            self.next()?;
            let (label, rest) = item(self.line(), 10).ok_or(Stop::Other)?;
            let (value, after) = match rest.strip_prefix("null") {
                Some(after) if nulls => (None, after),
                _ => {
                    let (value, after) = string(rest).ok_or(Stop::Other)?;
                    (Some(value.to_owned()), after)
                }
            };
            labels.push((label.to_owned(), value));
            if last(after)? {
                return sorted(labels);
            }
        }
    }
}

/// The one copy of `text` among those read so far.
fn share(shared: &mut Shared, text: &str) -> Arc<str> {
    if let Some(known) = shared.get(text) {
        return known.clone();
    }
    let text: Arc<str> = Arc::from(text);
    shared.insert(text.clone());
    text
}
