use super::*;

fn istio_defaults() -> Interception {
    Interception {
        proxy_port: 15001,
        inbound_capture_port: 15006,
        proxy_uid: 1337,
        proxy_gid: 1337,
        include_inbound_ports: Selection::All,
        exclude_inbound_ports: vec![15090, 15021, 15020],
        include_outbound_ip_ranges: Selection::All,
        exclude_outbound_ip_ranges: vec![],
        include_outbound_ports: vec![],
        exclude_outbound_ports: vec![],
    }
}

fn rules_of(input: &str) -> Vec<&str> {
    input.lines().filter(|l| l.starts_with('-')).collect()
}

#[test]
fn istio_defaults_give_istios_chain_layout() {
    let input = istio_defaults().install(Family::V4, "");
    assert!(input.starts_with("*nat\n:ISTIO_INBOUND - [0:0]\n"));
    assert!(input.ends_with("COMMIT\n"));
    assert_eq!(
        rules_of(&input),
        [
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
            "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
            "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN",
            "-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN",
            "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN",
            "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
            "-A PREROUTING -p tcp -j ISTIO_INBOUND",
            "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN",
            "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
            "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
            "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
            "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT",
            "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN",
            "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN",
            "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
            "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
            "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
        ]
    );
}

#[test]
fn include_lists_capture_only_what_they_name() {
    let mut i = istio_defaults();
    i.include_inbound_ports = Selection::Only(vec![9080]);
    i.include_outbound_ip_ranges = Selection::Only(vec![
        Cidr {
            addr: "10.96.0.0".parse().unwrap(),
            prefix: 12,
        },
        Cidr {
            addr: "fd00::".parse().unwrap(),
            prefix: 8,
        },
    ]);
    i.exclude_outbound_ip_ranges = vec![Cidr {
        addr: "10.96.0.10".parse().unwrap(),
        prefix: 32,
    }];
    i.include_outbound_ports = vec![443];
    i.exclude_outbound_ports = vec![3306];
    let v4 = i.install(Family::V4, "");
    let rules = rules_of(&v4);
    assert!(rules.contains(&"-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT"));
    assert!(!rules.contains(&"-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"));
    // Excluded ports first, then exclusions by address, then the include lists.
    let pos = |r: &str| rules.iter().position(|x| *x == r).unwrap();
    assert!(
        pos("-A ISTIO_OUTPUT -p tcp --dport 3306 -j RETURN")
            < pos("-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN")
    );
    assert!(
        pos("-A ISTIO_OUTPUT -d 10.96.0.10/32 -j RETURN")
            < pos("-A ISTIO_OUTPUT -p tcp --dport 443 -j ISTIO_REDIRECT")
    );
    assert!(
        pos("-A ISTIO_OUTPUT -p tcp --dport 443 -j ISTIO_REDIRECT")
            < pos("-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT")
    );
    assert!(!rules.contains(&"-A ISTIO_OUTPUT -j ISTIO_REDIRECT"));
    // Each family gets its own ranges only.
    assert!(!v4.contains("fd00::"));
    let v6 = i.install(Family::V6, "");
    assert!(v6.contains("-A ISTIO_OUTPUT -d fd00::/8 -j ISTIO_REDIRECT"));
    assert!(v6.contains("-A ISTIO_OUTPUT -s ::6/128 -o lo -j RETURN"));
    assert!(!v6.contains("10.96."));
}

#[test]
fn no_inbound_ports_means_no_inbound_capture() {
    let mut i = istio_defaults();
    i.include_inbound_ports = Selection::Only(vec![]);
    let input = i.install(Family::V4, "");
    assert!(!input.contains("PREROUTING"));
    assert!(!input.contains("-j ISTIO_IN_REDIRECT"));
}

#[test]
fn installing_twice_does_not_repeat_the_jumps() {
    let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:ISTIO_INBOUND - [0:0]\n-A PREROUTING -p tcp -j ISTIO_INBOUND\n-A OUTPUT -p tcp -j ISTIO_OUTPUT\nCOMMIT\n";
    let input = istio_defaults().install(Family::V4, saved);
    assert!(!input.contains("-A PREROUTING"));
    assert!(!input.contains("-A OUTPUT "));
    // The chains are still declared, which flushes and refills them.
    assert!(input.contains(":ISTIO_OUTPUT - [0:0]"));
}

#[test]
fn clean_removes_exactly_what_is_there() {
    assert_eq!(clean("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"), None);
    let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ISTIO_OUTPUT - [0:0]\n:ISTIO_REDIRECT - [0:0]\n:OTHER - [0:0]\n-A OUTPUT -p tcp -j ISTIO_OUTPUT\n-A OUTPUT -j OTHER\nCOMMIT\n";
    let input = clean(saved).unwrap();
    assert_eq!(
        input,
        "*nat\n:ISTIO_OUTPUT - [0:0]\n:ISTIO_REDIRECT - [0:0]\n-D OUTPUT -p tcp -j ISTIO_OUTPUT\n-X ISTIO_OUTPUT\n-X ISTIO_REDIRECT\nCOMMIT\n"
    );
}

#[test]
fn lists_are_checked() {
    assert_eq!(parse_ports("--p", "*"), Ok(Selection::All));
    assert_eq!(parse_ports("--p", ""), Ok(Selection::Only(vec![])));
    assert_eq!(
        parse_ports("--p", "80, 443"),
        Ok(Selection::Only(vec![80, 443]))
    );
    assert!(
        matches!(parse_ports("--p", "80,http"), Err(ParseError::Port { value, .. }) if value == "http")
    );
    assert!(parse_ports("--p", "0").is_err());
    assert_eq!(
        parse_cidrs("--c", "10.0.0.1").unwrap(),
        Selection::Only(vec![Cidr {
            addr: "10.0.0.1".parse().unwrap(),
            prefix: 32
        }])
    );
    assert!(parse_cidrs("--c", "10.0.0.0/33").is_err());
    assert!(parse_cidrs("--c", "10.0.0/8").is_err());
    assert!(parse_cidrs("--c", "fd00::/129").is_err());
    assert!(parse_cidrs("--c", "fd00::/64").is_ok());
}
