//! A million random and mutated messages through one decoder.
//!
//! Seeds are the real recorded Debezium messages. Each round mutates one
//! (bit flips, byte overwrites, truncation, insertion, deletion, a swapped
//! schema id, or random bytes behind a valid header) and pushes it. The
//! decoder must never panic, must name the message in every error, must
//! leave its batches untouched on error, and every batch it flushes must be
//! valid Arrow. `FLOE_FUZZ_ITERATIONS` and `FLOE_FUZZ_SEED` override the
//! defaults (1,000,000 and a fixed seed).

use std::panic::{catch_unwind, AssertUnwindSafe};

use ingest::{ChangeDecoder, RecordedMessage, Recording};

use crate::fixtures::fixture_dir;
use crate::ready;

/// xorshift64*: small, fast, and reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, schema_ids: &[u32]) {
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        match rng.below(9) {
            0 | 1 => {
                // bit flips, mostly after the header where the Avro body is
                let i = rng.below(bytes.len());
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            2 => {
                let i = rng.below(bytes.len());
                if let Some(b) = bytes.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
            3 => {
                let n = rng.below(bytes.len() + 1);
                bytes.truncate(n);
            }
            4 => {
                let i = rng.below(bytes.len() + 1);
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    bytes.insert(i.min(bytes.len()), rng.next() as u8);
                }
            }
            5 => {
                if !bytes.is_empty() {
                    let i = rng.below(bytes.len());
                    let n = 1 + rng.below(16);
                    bytes.drain(i..(i + n).min(bytes.len()));
                }
            }
            6 => {
                // schema confusion: the body read with another table's schema
                if bytes.len() >= 5 {
                    let id = schema_ids[rng.below(schema_ids.len())];
                    bytes[1..5].copy_from_slice(&id.to_be_bytes());
                }
            }
            7 => {
                // overlong varints and huge lengths where a length is read
                let i = 5 + rng.below(bytes.len().saturating_sub(5).max(1));
                if i < bytes.len() {
                    bytes[i] = 0xff;
                    if i + 1 < bytes.len() {
                        bytes[i + 1] = 0xff;
                    }
                }
            }
            _ => {
                // random body behind a valid header
                let n = rng.below(64);
                bytes.truncate(5.min(bytes.len()));
                for _ in 0..n {
                    bytes.push(rng.next() as u8);
                }
            }
        }
    }
}

#[test]
fn a_million_mutated_messages_never_panic() {
    let iterations: usize = std::env::var("FLOE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("FLOE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f10e);
    let recording = Recording::load(&fixture_dir()).unwrap();
    let mut schema_ids: Vec<u32> = recording.schemas.ids().collect();
    schema_ids.sort();
    let seeds: Vec<&RecordedMessage> = recording
        .messages
        .iter()
        .filter(|m| m.value.is_some())
        .collect();
    let mut rng = Rng(seed | 1);
    let mut decoder = ChangeDecoder::new(recording.schemas.clone());
    let (mut ok, mut errors, mut flushed_rows) = (0usize, 0usize, 0usize);

    for round in 0..iterations {
        let base = seeds[rng.below(seeds.len())];
        let mut msg = base.clone();
        msg.offset = round as i64;
        if rng.below(4) == 0 {
            if let Some(k) = msg.key.as_mut() {
                mutate(&mut rng, k, &schema_ids);
            }
        }
        if rng.below(10) != 0 {
            if let Some(v) = msg.value.as_mut() {
                mutate(&mut rng, v, &schema_ids);
            }
        }
        let before = decoder.buffered_messages();
        let result = catch_unwind(AssertUnwindSafe(|| ready(decoder.push(&msg.as_raw()))));
        match result {
            Err(_) => panic!(
                "decoder panicked (seed {seed}, round {round}) on topic {} key {:02x?} value {:02x?}",
                msg.topic, msg.key, msg.value
            ),
            Ok(Ok(_)) => {
                ok += 1;
                assert!(decoder.buffered_messages() <= before + 1);
            }
            Ok(Err(e)) => {
                errors += 1;
                assert_eq!(e.position.offset, round as i64);
                assert_eq!(e.position.topic, msg.topic);
                assert_eq!(decoder.buffered_messages(), before, "round {round}: a failed message changed the batch: {e}");
            }
        }
        if round % 20_000 == 19_999 || round + 1 == iterations {
            for batch in decoder.flush() {
                flushed_rows += batch.num_rows();
                for column in batch.records.columns() {
                    column.to_data().validate_full().unwrap_or_else(|e| {
                        panic!(
                            "invalid Arrow in a batch of {} (seed {seed}, round {round}): {e}",
                            batch.topic
                        )
                    });
                }
            }
        }
    }
    eprintln!("fuzz: {iterations} messages, {ok} decoded, {errors} rejected, {flushed_rows} rows flushed (seed {seed})");
    assert!(
        ok > iterations / 20,
        "mutations should leave some messages decodable"
    );
    assert!(errors > iterations / 2, "most mutations should be rejected");
}
