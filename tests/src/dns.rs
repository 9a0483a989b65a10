//! A DNS server for one name, on a free loopback UDP port, whose answer the test changes at
//! will: an address, SERVFAIL, NXDOMAIN, or no answer at all. Every other name is NXDOMAIN;
//! an AAAA question about the name gets an empty answer (the name has IPv4 only).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

/// What the server says about its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsAnswer {
    Address(Ipv4Addr),
    ServFail,
    NxDomain,
    /// Reads the question and never answers, like a resolver that is down.
    Silent,
}

pub struct FakeDns {
    pub addr: SocketAddr,
    answer: Arc<Mutex<DnsAnswer>>,
    questions: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeDns {
    pub async fn start(name: &str, answer: DnsAnswer) -> FakeDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS");
        let addr = socket.local_addr().expect("DNS addr");
        let answer = Arc::new(Mutex::new(answer));
        let questions = Arc::new(AtomicU64::new(0));
        let (state, count) = (answer.clone(), questions.clone());
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Some(q) = Question::parse(&buf[..n]) else {
                    continue;
                };
                let now = *state.lock().expect("DNS state");
                let (rcode, address) = match now {
                    _ if q.name != name => (3, None),
                    DnsAnswer::Silent => {
                        count.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    DnsAnswer::ServFail => (2, None),
                    DnsAnswer::NxDomain => (3, None),
                    DnsAnswer::Address(ip) => (0, (q.qtype == 1).then_some(ip)),
                };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = socket.send_to(&q.answer(rcode, address), from).await;
            }
        });
        FakeDns {
            addr,
            answer,
            questions,
            task,
        }
    }

    pub fn set(&self, answer: DnsAnswer) {
        *self.answer.lock().expect("DNS state") = answer;
    }

    /// Questions about the name so far.
    pub fn questions(&self) -> u64 {
        self.questions.load(Ordering::SeqCst)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The one question of a standard query.
struct Question<'a> {
    msg: &'a [u8],
    /// Where the question section ends.
    end: usize,
    name: String,
    qtype: u16,
}

impl<'a> Question<'a> {
    fn parse(msg: &'a [u8]) -> Option<Question<'a>> {
        let is_query = msg.len() > 12 && msg[2] & 0x80 == 0;
        let one_question = msg.get(4..6)? == [0, 1];
        if !is_query || !one_question {
            return None;
        }
        let mut at = 12;
        let mut labels = Vec::new();
        loop {
            let len = usize::from(*msg.get(at)?);
            at += 1;
            if len == 0 {
                break;
            }
            labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).to_ascii_lowercase());
            at += len;
        }
        let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
        Some(Question {
            msg,
            end: at + 4,
            name: labels.join("."),
            qtype,
        })
    }

    /// The response: the question echoed, and one A record (TTL 0) when `address` is given.
    fn answer(&self, rcode: u8, address: Option<Ipv4Addr>) -> Vec<u8> {
        let mut r = self.msg[..self.end].to_vec();
        r[2] = 0x80 | (self.msg[2] & 0x01); // QR, and RD as asked
        r[3] = 0x80 | rcode; // RA
        r[6..12].copy_from_slice(&[0, u8::from(address.is_some()), 0, 0, 0, 0]);
        if let Some(ip) = address {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
            r.extend_from_slice(&ip.octets());
        }
        r
    }
}
