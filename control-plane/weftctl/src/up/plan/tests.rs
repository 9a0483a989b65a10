use super::*;
use std::path::PathBuf;

fn workload(name: &str, app: &str, version: &str, port: u32) -> WorkloadEntry {
    WorkloadEntry {
        name: name.into(),
        namespace: "default".into(),
        address: LOCAL_ADDRESS.into(),
        ports: [("http".to_string(), port)].into(),
        labels: [
            ("app".to_string(), app.to_string()),
            ("version".to_string(), version.to_string()),
        ]
        .into(),
        file: PathBuf::from("workloads.yaml"),
    }
}

fn bookinfo() -> Vec<WorkloadEntry> {
    vec![
        workload("productpage-v1", "productpage", "v1", 19080),
        workload("details-v1", "details", "v1", 19081),
        workload("reviews-v1", "reviews", "v1", 19082),
        workload("reviews-v2", "reviews", "v2", 19083),
    ]
}

fn arg_after<'a>(p: &'a Process, flag: &str) -> &'a str {
    let i = p
        .args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing in {:?}", p.args));
    &p.args[i + 1]
}

fn by_name<'a>(plan: &'a Plan, name: &str) -> &'a Process {
    plan.mesh
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no process {name}"))
}

#[test]
fn control_plane_gets_the_folder_and_its_ports() {
    let plan = plan(
        Path::new("/cfg/bookinfo"),
        &Ports::default(),
        &bookinfo(),
        &[],
    )
    .unwrap();
    let weftd = &plan.control_plane;
    assert_eq!(weftd.program, Program::Weftd);
    assert_eq!(
        weftd.args,
        [
            "--config-dir",
            "/cfg/bookinfo",
            "--xds-addr",
            "127.0.0.1:15010",
            "--http-addr",
            "127.0.0.1:15014",
        ]
    );
    assert_eq!(weftd.ready_url, "http://127.0.0.1:15014/ready");
}

#[test]
fn each_workload_gets_an_app_and_a_sidecar_on_numbered_ports() {
    let plan = plan(Path::new("/cfg"), &Ports::default(), &bookinfo(), &[]).unwrap();
    // 4 apps + 4 sidecars + ingress.
    assert_eq!(plan.mesh.len(), 9);

    let app = by_name(&plan, "reviews-v2");
    assert_eq!(app.program, Program::DemoApp);
    assert_eq!(
        app.args,
        [
            "--service",
            "reviews",
            "--version",
            "v2",
            "--listen",
            "127.0.0.1:19083",
            "--proxy",
            "127.0.0.1:15103",
            "--namespace",
            "default",
        ]
    );
    assert_eq!(app.ready_url, "http://127.0.0.1:19083/health");

    let sidecar = by_name(&plan, "reviews-v2-sidecar");
    assert_eq!(sidecar.program, Program::WeftProxy);
    assert_eq!(arg_after(sidecar, "--xds-addr"), "127.0.0.1:15010");
    assert_eq!(
        arg_after(sidecar, "--node-id"),
        "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local"
    );
    assert_eq!(arg_after(sidecar, "--namespace"), "default");
    assert_eq!(arg_after(sidecar, "--workload"), "reviews-v2");
    assert_eq!(arg_after(sidecar, "--labels"), "app=reviews,version=v2");
    assert_eq!(arg_after(sidecar, "--outbound-addr"), "127.0.0.1:15103");
    assert_eq!(arg_after(sidecar, "--admin-addr"), "127.0.0.1:15203");
    assert_eq!(sidecar.ready_url, "http://127.0.0.1:15203/ready");

    assert_eq!(
        arg_after(by_name(&plan, "productpage-v1-sidecar"), "--outbound-addr"),
        "127.0.0.1:15100"
    );
}

#[test]
fn ingress_proxy_is_where_the_user_curls() {
    let plan = plan(Path::new("/cfg"), &Ports::default(), &bookinfo(), &[]).unwrap();
    let ingress = by_name(&plan, "ingress");
    assert_eq!(ingress.role, Role::Ingress);
    assert_eq!(arg_after(ingress, "--workload"), "ingress");
    assert_eq!(arg_after(ingress, "--outbound-addr"), "127.0.0.1:15001");
    assert_eq!(arg_after(ingress, "--admin-addr"), "127.0.0.1:15000");
    assert!(!ingress.args.contains(&"--labels".to_string()));
    assert_eq!(
        plan.target.curl_line(),
        "curl -x http://127.0.0.1:15001 http://productpage:9080/productpage"
    );
}

#[test]
fn curl_line_follows_the_ports_chosen() {
    let ports = Ports {
        ingress: 25001,
        ..Ports::default()
    };
    let services = [ServiceEntry {
        name: "productpage".into(),
        namespace: "default".into(),
        hosts: vec!["productpage.default.svc.cluster.local".into()],
        ports: vec![8000],
    }];
    let plan = plan(Path::new("/cfg"), &ports, &bookinfo(), &services).unwrap();
    assert_eq!(
        plan.target.curl_line(),
        "curl -x http://127.0.0.1:25001 http://productpage:8000/productpage"
    );
}

#[test]
fn without_productpage_the_first_workload_is_the_target() {
    let plan = plan(Path::new("/cfg"), &Ports::default(), &bookinfo()[1..], &[]).unwrap();
    assert_eq!(plan.target.url, "http://details:9080/");
}

#[test]
fn entries_that_are_not_local_demo_workloads_are_skipped_with_a_reason() {
    let mut remote = workload("remote", "db", "v1", 5432);
    remote.address = "10.0.0.7".into();
    let mut unlabeled = workload("plain", "x", "v1", 19999);
    unlabeled.labels.remove("version");
    let mut entries = bookinfo();
    entries.push(remote);
    entries.push(unlabeled);
    entries.push(workload("details-v1", "details", "v1", 19081));
    let plan = plan(Path::new("/cfg"), &Ports::default(), &entries, &[]).unwrap();
    assert_eq!(plan.mesh.len(), 9);
    assert_eq!(plan.skipped.len(), 3);
    assert!(plan.skipped[0].contains("10.0.0.7"));
    assert!(plan.skipped[1].contains("version"));
    assert!(plan.skipped[2].contains("twice"));
}

#[test]
fn other_namespaces_qualify_names_and_node_ids() {
    let mut w = workload("ratings-v1", "ratings", "v1", 19085);
    w.namespace = "books".into();
    let plan = plan(Path::new("/cfg"), &Ports::default(), &[w], &[]).unwrap();
    let sidecar = by_name(&plan, "ratings-v1.books-sidecar");
    assert_eq!(
        arg_after(sidecar, "--node-id"),
        "sidecar~127.0.0.1~ratings-v1.books~books.svc.cluster.local"
    );
    assert_eq!(
        arg_after(by_name(&plan, "ratings-v1.books"), "--namespace"),
        "books"
    );
    assert_eq!(arg_after(by_name(&plan, "ingress"), "--namespace"), "books");
}

#[test]
fn the_http_port_wins_over_others() {
    let mut w = workload("a", "a", "v1", 19000);
    w.ports.insert("admin".into(), 19001);
    let p = plan(Path::new("/cfg"), &Ports::default(), &[w.clone()], &[]).unwrap();
    assert_eq!(arg_after(by_name(&p, "a"), "--listen"), "127.0.0.1:19000");
    w.ports.remove("http");
    let p = plan(Path::new("/cfg"), &Ports::default(), &[w], &[]).unwrap();
    assert_eq!(arg_after(by_name(&p, "a"), "--listen"), "127.0.0.1:19001");
}

#[test]
fn port_clashes_are_found_before_anything_starts() {
    // An app on the ingress port.
    let err = plan(
        Path::new("/cfg"),
        &Ports::default(),
        &[workload("a", "a", "v1", 15001)],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err,
        PlanError::PortClash {
            port: 15001,
            first: "a (http)".into(),
            second: "ingress (outbound)".into(),
        }
    );
    // Two apps on one port.
    let err = plan(
        Path::new("/cfg"),
        &Ports::default(),
        &[
            workload("a", "a", "v1", 19000),
            workload("b", "b", "v1", 19000),
        ],
        &[],
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::PortClash { port: 19000, .. }));
}

#[test]
fn bad_or_missing_ports_and_empty_folders_are_errors() {
    let mut w = workload("a", "a", "v1", 70000);
    assert!(matches!(
        plan(Path::new("/cfg"), &Ports::default(), &[w.clone()], &[]),
        Err(PlanError::BadPort { port: 70000, .. })
    ));
    w.ports.clear();
    assert_eq!(
        plan(Path::new("/cfg"), &Ports::default(), &[w], &[]),
        Err(PlanError::NoPort("a.default".into()))
    );
    assert!(matches!(
        plan(Path::new("/cfg"), &Ports::default(), &[], &[]),
        Err(PlanError::NoWorkloads(_))
    ));
}

#[test]
fn the_bookinfo_example_plans_as_documented() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bookinfo");
    let config = super::super::config::read_dir(&dir).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.services.len(), 4);
    let p = plan(&dir, &Ports::default(), &config.workloads, &config.services).unwrap();
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    let apps: Vec<(&str, &str, &str)> = p
        .mesh
        .iter()
        .filter(|x| x.role == Role::App)
        .map(|x| {
            (
                x.name.as_str(),
                arg_after(x, "--listen"),
                arg_after(x, "--proxy"),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            ("details-v1", "127.0.0.1:19081", "127.0.0.1:15100"),
            ("productpage-v1", "127.0.0.1:19080", "127.0.0.1:15101"),
            ("ratings-v1", "127.0.0.1:19085", "127.0.0.1:15102"),
            ("reviews-v1", "127.0.0.1:19082", "127.0.0.1:15103"),
            ("reviews-v2", "127.0.0.1:19083", "127.0.0.1:15104"),
            ("reviews-v3", "127.0.0.1:19084", "127.0.0.1:15105"),
        ]
    );
    assert_eq!(
        p.target.curl_line(),
        "curl -x http://127.0.0.1:15001 http://productpage:9080/productpage"
    );
}

#[test]
fn an_app_port_base_moves_the_apps_and_tells_weftd() {
    let ports = Ports {
        app_base: Some(29080),
        ..Ports::default()
    };
    let plan = plan(Path::new("/cfg"), &ports, &bookinfo(), &[]).unwrap();
    assert_eq!(
        arg_after(&plan.control_plane, "--local-port-map"),
        "19080=29080,19081=29081,19082=29082,19083=29083"
    );
    let app = by_name(&plan, "reviews-v1");
    assert_eq!(arg_after(app, "--listen"), "127.0.0.1:29082");
    assert_eq!(app.ready_url, "http://127.0.0.1:29082/health");
    assert_eq!(app.listens, [("http", local(29082))]);
}

#[test]
fn without_a_base_weftd_gets_no_port_map() {
    let unmoved = plan(Path::new("/cfg"), &Ports::default(), &bookinfo(), &[]).unwrap();
    assert!(!unmoved
        .control_plane
        .args
        .contains(&"--local-port-map".to_string()));
    // A base equal to the declared ports moves nothing.
    let ports = Ports {
        app_base: Some(19080),
        ..Ports::default()
    };
    let same = plan(Path::new("/cfg"), &ports, &bookinfo(), &[]).unwrap();
    assert!(!same
        .control_plane
        .args
        .contains(&"--local-port-map".to_string()));
}

#[test]
fn workloads_sharing_a_declared_port_cannot_be_moved() {
    let mut workloads = bookinfo();
    workloads[1].ports = [("http".to_string(), 19080)].into();
    let ports = Ports {
        app_base: Some(29080),
        ..Ports::default()
    };
    assert!(matches!(
        plan(Path::new("/cfg"), &ports, &workloads, &[]),
        Err(PlanError::SharedDeclaredPort { port: 19080, .. })
    ));
}
