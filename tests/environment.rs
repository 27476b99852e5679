//! End-to-end test of SPEC §3: the environment `conductor up` injects into every service, as the
//! service itself reports it (fake-service's `GET /env`), and the correlation id shared by the
//! environment and the health probes of one start attempt.

// `pub` so that helpers this file does not use are not dead code.
pub mod support;

use serde_json::Value;
use support::{Conductor, TempDir, fake_service, free_ports, get_json, registry_head};

#[test]
fn every_service_gets_the_injected_environment_then_its_own() {
    let dir = TempDir::new("environment");
    let [port] = free_ports();
    let registry = format!(
        r#"{head}
[services.records]
port = {port}
command = {bin}
env = {{ OWN_SETTING = "yes", LOG_LEVEL = "trace" }}
"#,
        head = registry_head("EnvTest")
            .replace("[app]\n", "[app]\ndeployment_env = \"desktop-test\"\n"),
        bin = fake_service(),
    );
    let registry_path = dir.write("conductor.toml", &registry);
    let mut conductor =
        Conductor::spawn(&registry_path, &dir.join("data"), &["--log-level", "debug"]);
    conductor.wait_up();
    let data_dir = conductor.data_dir.display().to_string();

    let env = get_json(port, "/env");
    let var = |name: &str| match env.get(name).and_then(Value::as_str) {
        Some(value) => value.to_owned(),
        None => panic!("{name} is not in the service's environment: {env}"),
    };
    assert_eq!(var("PORT"), port.to_string());
    assert_eq!(var("SERVICE_NAME"), "records");
    assert_eq!(var("DEPLOYMENT_ENV"), "desktop-test");
    let db: Value = conductor.call_ok("database:status", "");
    let db_path = db["path"].as_str().unwrap_or_default().to_owned();
    assert_eq!(var("DATABASE_URL"), format!("sqlite://{db_path}"));
    let evidence = var("EVIDENCE_STORAGE_PATH");
    assert_eq!(evidence, format!("{data_dir}/evidence"));
    assert!(
        std::path::Path::new(&evidence).is_dir(),
        "{evidence} not created"
    );
    // The service's own env comes last, so it wins over what conductor injects.
    assert_eq!(var("OWN_SETTING"), "yes");
    assert_eq!(var("LOG_LEVEL"), "trace");
    // The parent environment is inherited.
    assert_eq!(var("PATH"), std::env::var("PATH").unwrap_or_default());

    // The readiness probe carried this attempt's correlation id.
    let correlation = var("CONDUCTOR_CORRELATION_ID");
    assert!(!correlation.is_empty());
    let info = get_json(port, "/info");
    assert_eq!(
        info["lastCorrelationId"].as_str(),
        Some(correlation.as_str()),
        "{info}"
    );

    // A new attempt gets a new id.
    let restarted: Value = conductor.call_ok("services:restart", r#"{"serviceName":"records"}"#);
    assert_eq!(restarted["success"], Value::Bool(true), "{restarted}");
    let again = get_json(port, "/env");
    let new_correlation = again["CONDUCTOR_CORRELATION_ID"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !new_correlation.is_empty() && new_correlation != correlation,
        "restart kept correlation id {correlation:?}: {again}"
    );
}
