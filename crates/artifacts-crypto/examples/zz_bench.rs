use artifacts_crypto::{Origin, age, sops};
use std::io::BufReader;
use std::time::Instant;

fn header(stanzas: &str) -> Vec<u8> {
    let mut h = b"age-encryption.org/v1\n".to_vec();
    h.extend_from_slice(stanzas.as_bytes());
    h.extend_from_slice(b"--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    h.extend_from_slice(&[0u8; 32]);
    h
}
fn grease(body: usize) -> String {
    let mut s = String::from("-> grease\n");
    for _ in 0..body / 48 {
        s.push_str(&"A".repeat(64));
        s.push('\n');
    }
    s.push_str("AAAA\n");
    s
}
fn main() {
    let which = std::env::args().nth(1).unwrap();
    let old = std::env::args().nth(2).as_deref() == Some("old");
    let id = age::keygen().to_identity();
    let o = Origin::Described("bench".into());
    let input = match which.as_str() {
        "grease" => header(&grease(1_300_000)),
        "grease1m" => header(&grease(750_000)),
        "stanzas" => header(&grease(0).repeat(6000)),
        "stanzas4096" => header(&grease(0).repeat(4096)),
        "yaml" => format!("a: {}\n", "[".repeat(200_000)).into_bytes(),
        "yamlbal" => format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        _ => panic!(),
    };
    let t = Instant::now();
    if which.starts_with("yaml") {
        if old {
            let r =
                serde_norway::from_str::<serde_norway::Value>(std::str::from_utf8(&input).unwrap());
            println!(
                "{which} old (libyaml once): {:?} ok={}",
                t.elapsed(),
                r.is_ok()
            );
        } else {
            let r = sops::parse_plain(&input, sops::Format::Yaml, &o);
            println!(
                "{which} new: {:?} {}",
                t.elapsed(),
                r.err().map(|e| e.to_string()).unwrap_or_default()
            );
        }
    } else if old {
        let r = ::age::Decryptor::new_buffered(BufReader::new(&input[..]));
        println!(
            "{which} old (age crate alone): {:?} ok={}",
            t.elapsed(),
            r.is_ok()
        );
    } else {
        let r = age::decrypt(&[id], &input, &o);
        println!(
            "{which} new: {:?} {}",
            t.elapsed(),
            r.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
}
