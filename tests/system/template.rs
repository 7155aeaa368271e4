//! `template.yaml` is valid CloudFormation, grants only what each function
//! needs, and can be operated: every alarm reaches someone and names its
//! runbook entry, every log group has a retention, the dashboard and the
//! alarms read only metrics the code emits, and the stack's outputs are the
//! ones the operator commands read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn root() -> PathBuf {
    local_stack::workspace_root()
}

fn template() -> Value {
    let path = root().join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml readable");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

fn resources(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .map(|(k, v)| (k.as_str().expect("logical id").to_owned(), v.clone()))
        .collect()
}

fn of_type(template: &Value, kind: &str) -> BTreeMap<String, Value> {
    resources(template)
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

/// The value under a short-form tag (`!Sub`, `!Ref`, `!GetAtt`).
fn tagged<'a>(value: &'a Value, tag: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(t) if t.tag == tag => Some(&t.value),
        _ => None,
    }
}

/// `!Sub "text"` (or a plain string) as its text.
fn sub(value: &Value) -> Option<&str> {
    tagged(value, "Sub").unwrap_or(value).as_str()
}

/// `!Ref Name` as `Name`.
fn reference(value: &Value) -> Option<&str> {
    tagged(value, "Ref")?.as_str()
}

/// `!GetAtt Name.Attribute` as `Name.Attribute`.
fn get_att(value: &Value) -> Option<&str> {
    tagged(value, "GetAtt")?.as_str()
}

fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Sequence(items) => items.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    }
}

fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).expect("yaml")
}

/// Every policy statement of the template, with who holds it: the inline
/// statements of the functions SAM gives a role, the inline policies of
/// the declared roles, and the managed policies.
fn statements(template: &Value) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for (name, function) in of_type(template, "AWS::Serverless::Function") {
        for policy in list(&function["Properties"]["Policies"]) {
            let inline = policy["Statement"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{name}: inline statements only, got {policy:?}"));
            all.extend(inline.iter().map(|s| (name.clone(), s.clone())));
        }
    }
    for (name, role) in of_type(template, "AWS::IAM::Role") {
        for policy in list(&role["Properties"]["Policies"]) {
            for statement in list(&policy["PolicyDocument"]["Statement"]) {
                all.push((name.clone(), statement));
            }
        }
    }
    for (name, policy) in of_type(template, "AWS::IAM::ManagedPolicy") {
        for statement in list(&policy["Properties"]["PolicyDocument"]["Statement"]) {
            all.push((name.clone(), statement));
        }
    }
    all
}

/// GitHub's anchors of a Markdown file's headings.
fn anchors(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| {
            heading
                .trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// The text of every Rust source of the functions (where metrics are emitted).
fn function_sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).expect("source readable"));
            }
        }
    }
    let mut text = String::new();
    walk(&root().join("functions"), &mut text);
    text
}

/// cfn-lint with the serverless-rules plugin: where a rule does not fit, the
/// resource says so and why in its `Metadata` (`ignore_checks`).
#[test]
fn cfn_lint_passes() {
    local_stack::ensure_installed().expect("pinned tools installed");
    let output = Command::new(local_stack::python_tool("cfn-lint"))
        .arg(root().join("template.yaml"))
        .args(["--append-rules", "cfn_lint_serverless.rules"])
        .output()
        .expect("cfn-lint runs");
    assert!(
        output.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every policy statement names its actions and resources: no wildcard
/// resource, no broad managed policy, no table scans, and nothing may
/// delete from the ledger (the order functions and the operator delete only
/// the trading table's transient wait markers).
#[test]
fn function_policies_are_least_privilege() {
    let template = template();
    let roles = of_type(&template, "AWS::IAM::Role");
    let functions = of_type(&template, "AWS::Serverless::Function");
    assert_eq!(
        functions.len(),
        5,
        "the five functions of the design are declared"
    );
    for (name, function) in &functions {
        let properties = &function["Properties"];
        match properties.get("Role") {
            // A declared role (named, so Balances can list it): its policies
            // are the template's, not SAM's.
            Some(role) => {
                let role = get_att(role)
                    .and_then(|r| r.strip_suffix(".Arn"))
                    .unwrap_or_else(|| panic!("{name}: Role is !GetAtt <role>.Arn"));
                assert!(roles.contains_key(role), "{name}: {role} is declared");
                assert!(
                    properties.get("Policies").is_none(),
                    "{name}: SAM ignores Policies beside a Role"
                );
            }
            None => assert!(
                properties["Policies"].is_sequence(),
                "{name} lists its policies"
            ),
        }
    }
    let xray = "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess";
    for (name, role) in &roles {
        for managed in list(&role["Properties"]["ManagedPolicyArns"]) {
            assert_eq!(
                sub(&managed),
                Some(xray),
                "{name}: only X-Ray's managed policy"
            );
        }
    }
    let forbidden_actions = [
        "dynamodb:Scan",
        "dynamodb:BatchWriteItem",
        "dynamodb:*",
        "sqs:*",
        "secretsmanager:*",
        "execute-api:*",
    ];
    for (name, statement) in statements(&template) {
        let rendered = yaml(&statement["Resource"]);
        assert!(
            !rendered.contains("'*'") && rendered.trim() != "'*'",
            "{name}: wildcard resource {rendered}"
        );
        assert!(
            !rendered.contains(":*"),
            "{name}: wildcard in resource {rendered}"
        );
        let actions = yaml(&statement["Action"]);
        for action in forbidden_actions {
            assert!(!actions.contains(action), "{name} may not {action}");
        }
        if actions.contains("dynamodb:DeleteItem") {
            assert!(
                !rendered.contains("BalancesTable"),
                "{name} may not delete from the ledger"
            );
            for resource in list(&statement["Resource"]) {
                assert!(
                    yaml(&resource).contains("TradingTable"),
                    "{name} deletes only on the trading table: {rendered}"
                );
            }
        }
    }
}

/// The three order functions may call only Balances' trading routes (and
/// read); the admin role only the admin route (and read); and the Balances
/// function admits exactly those roles by the names the roles are given.
#[test]
fn balances_routes_are_granted_to_exactly_the_roles_balances_admits() {
    let template = template();
    let roles = of_type(&template, "AWS::IAM::Role");
    let role_name = |role: &str| {
        sub(&roles[role]["Properties"]["RoleName"])
            .unwrap_or_else(|| panic!("{role} has a RoleName"))
            .to_owned()
    };
    let invoke = |role: &str| -> Vec<String> {
        list(&roles[role]["Properties"]["Policies"])
            .iter()
            .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
            .filter(|s| yaml(&s["Action"]).contains("execute-api:Invoke"))
            .flat_map(|s| list(&s["Resource"]))
            .map(|r| {
                let arn = sub(&r).expect("a !Sub ARN").to_owned();
                let route = arn
                    .split_once("${BalancesApi}/*/")
                    .unwrap_or_else(|| panic!("{role}: a route of the Balances API: {arn}"))
                    .1;
                route.to_owned()
            })
            .collect()
    };
    let trading_route = "POST/accounts/*/operations";
    let admin_route = "POST/admin/accounts/*/operations";
    let functions = of_type(&template, "AWS::Serverless::Function");
    let trading_roles = ["PlaceOrderRole", "FillProcessorRole", "ReconcilerRole"];
    for (role, function) in trading_roles.iter().zip([
        "PlaceOrderFunction",
        "FillProcessorFunction",
        "ReconcilerFunction",
    ]) {
        assert_eq!(
            get_att(&functions[function]["Properties"]["Role"]),
            Some(format!("{role}.Arn").as_str())
        );
        let routes = invoke(role);
        assert!(
            routes.iter().any(|r| r == trading_route),
            "{role}: {routes:?}"
        );
        for route in &routes {
            assert!(
                route == trading_route || route.starts_with("GET/accounts/"),
                "{role} may call only the trading routes: {route}"
            );
        }
    }
    let admin = invoke("BalancesAdminRole");
    assert!(admin.iter().any(|r| r == admin_route), "{admin:?}");
    for route in &admin {
        assert!(
            route == admin_route || route.starts_with("GET/accounts/"),
            "the admin role may call only the admin route and read: {route}"
        );
    }

    let env = &functions["BalancesFunction"]["Properties"]["Environment"]["Variables"];
    let admitted: Vec<String> = sub(&env["BALANCES_TRADING_ROLES"])
        .expect("BALANCES_TRADING_ROLES")
        .split(',')
        .map(str::to_owned)
        .collect();
    let named: Vec<String> = trading_roles.iter().map(|r| role_name(r)).collect();
    assert_eq!(admitted, named);
    assert_eq!(
        sub(&env["BALANCES_ADMIN_ROLES"]),
        Some(role_name("BalancesAdminRole").as_str())
    );
}

#[test]
fn every_alarm_notifies_the_topic_and_names_its_runbook_entry() {
    let template = template();
    let runbook = anchors(&root().join("docs").join("runbook.md"));
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    let mut watched = BTreeSet::new();
    for (name, alarm) in &alarms {
        let properties = &alarm["Properties"];
        let actions = list(&properties["AlarmActions"]);
        assert!(
            actions.iter().any(|a| reference(a) == Some("AlarmTopic")),
            "{name} notifies the alarm topic: {actions:?}"
        );
        let description = properties["AlarmDescription"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has a description"));
        let anchor = description
            .split_once("docs/runbook.md#")
            .map(|(_, a)| a.trim_end_matches(|c: char| !c.is_alphanumeric()))
            .unwrap_or_else(|| panic!("{name} names its runbook entry: {description}"));
        assert!(
            runbook.contains(anchor),
            "{name}: docs/runbook.md has no entry #{anchor} (has {runbook:?})"
        );
        let dimension = list(&properties["Dimensions"])
            .first()
            .map(|d| yaml(&d["Value"]))
            .unwrap_or_default();
        watched.insert((
            properties["Namespace"].as_str().unwrap_or("").to_owned(),
            properties["MetricName"].as_str().unwrap_or("").to_owned(),
            dimension.trim().to_owned(),
        ));
    }
    let has = |namespace: &str, metric: &str, dimension: &str| {
        watched
            .iter()
            .any(|(n, m, d)| n == namespace && m == metric && d.contains(dimension))
    };
    assert!(has("TradingPlatform", "OrdersFlagged", "reconciler"));
    assert!(has("TradingPlatform", "RecoveryErrors", "reconciler"));
    assert!(has(
        "TradingPlatform",
        "WebhookSignatureFailures",
        "fill-webhook"
    ));
    assert!(has("TradingPlatform", "PlacementErrors", "place-order"));
    assert!(has("TradingPlatform", "Shortfalls", "balances"));
    assert!(has(
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "FillDeadLetterQueue"
    ));
    assert!(has("AWS/SQS", "ApproximateAgeOfOldestMessage", "FillQueue"));
    for function in of_type(&template, "AWS::Serverless::Function").keys() {
        for metric in ["Errors", "Throttles"] {
            assert!(has("AWS/Lambda", metric, function), "{function} {metric}");
        }
    }
}

/// Each function logs JSON to a log group of its own, named as Lambda would
/// name it and created by the stack with a retention, before the function.
#[test]
fn every_function_logs_json_to_its_own_group_with_retention() {
    let template = template();
    let groups = of_type(&template, "AWS::Logs::LogGroup");
    for (name, function) in of_type(&template, "AWS::Serverless::Function") {
        let properties = &function["Properties"];
        let function_name =
            sub(&properties["FunctionName"]).unwrap_or_else(|| panic!("{name} has a FunctionName"));
        let logging = &properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"].as_str(), Some("JSON"), "{name}");
        let group = reference(&logging["LogGroup"])
            .unwrap_or_else(|| panic!("{name}: LoggingConfig.LogGroup is !Ref <group>"));
        let group = &groups
            .get(group)
            .unwrap_or_else(|| panic!("{name}: {group} is a declared log group"))["Properties"];
        assert_eq!(
            sub(&group["LogGroupName"]),
            Some(format!("/aws/lambda/{function_name}").as_str()),
            "{name}"
        );
        assert_eq!(
            reference(&group["RetentionInDays"]),
            Some("LogRetentionDays"),
            "{name}"
        );
    }
}

/// Both HTTP APIs write JSON access logs to a group with a retention and
/// have stage limits and per-route metrics.
#[test]
fn both_apis_log_json_access_and_are_throttled() {
    let template = template();
    let groups = of_type(&template, "AWS::Logs::LogGroup");
    let apis = of_type(&template, "AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 2);
    for (name, api) in apis {
        let properties = &api["Properties"];
        let access = &properties["AccessLogSettings"];
        let format = access["Format"].as_str().expect("a format");
        let fields: serde_json::Value =
            serde_json::from_str(format).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        for field in ["requestId", "routeKey", "status"] {
            assert!(fields.get(field).is_some(), "{name} logs {field}");
        }
        let destination = sub(&access["DestinationArn"]).expect("destination");
        let group = destination
            .rsplit_once("log-group:${")
            .map(|(_, g)| g.trim_end_matches('}'))
            .unwrap_or_else(|| panic!("{name}: {destination}"));
        assert!(
            groups[group]["Properties"].get("RetentionInDays").is_some(),
            "{name}: {group} keeps its events for a bounded time"
        );
        let limits = &properties["DefaultRouteSettings"];
        for setting in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            assert!(
                reference(&limits[setting]).is_some(),
                "{name}: {setting} is a parameter"
            );
        }
        assert_eq!(limits["DetailedMetricsEnabled"].as_bool(), Some(true));
    }
}

/// Every metric the dashboard and the alarms read in the platform's
/// namespace is one the functions emit (its name and its `Function`
/// dimension appear in their sources), and the dashboard shows what an
/// operator needs.
#[test]
fn the_dashboard_and_alarms_read_only_metrics_the_code_emits() {
    let template = template();
    let sources = function_sources();
    let emitted = |literal: &str| sources.contains(&format!("\"{literal}\""));
    assert!(sources.contains("metrics::line("), "the EMF helper is used");

    let dashboards = of_type(&template, "AWS::CloudWatch::Dashboard");
    let (_, dashboard) = dashboards.iter().next().expect("a dashboard");
    let body = sub(&dashboard["Properties"]["DashboardBody"]).expect("!Sub body");
    // Every ${...} becomes 1: inside a string it stays a string, outside a number.
    let mut json = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        json.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed substitution") + start;
        json.push('1');
        rest = &rest[end + 1..];
    }
    json.push_str(rest);
    let body: serde_json::Value = serde_json::from_str(&json).expect("the dashboard is JSON");
    let mut shown: Vec<(String, String, Vec<String>)> = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        for metric in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let parts = metric.as_array().expect("a metric is an array");
            let text: Vec<String> = parts
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect();
            let stat = parts
                .iter()
                .find_map(|p| p.get("stat")?.as_str().map(str::to_owned))
                .unwrap_or_default();
            shown.push((text[0].clone(), text[1].clone(), {
                let mut rest = text[2..].to_vec();
                rest.push(stat);
                rest
            }));
        }
    }
    let mut read: Vec<(String, String)> = shown
        .iter()
        .filter(|(namespace, _, _)| namespace == "TradingPlatform")
        .map(|(_, name, dims)| (name.clone(), dims[1].clone()))
        .collect();
    for (_, alarm) in of_type(&template, "AWS::CloudWatch::Alarm") {
        let properties = &alarm["Properties"];
        if properties["Namespace"].as_str() == Some("TradingPlatform") {
            let function = list(&properties["Dimensions"])
                .first()
                .and_then(|d| d["Value"].as_str().map(str::to_owned))
                .unwrap_or_default();
            read.push((
                properties["MetricName"].as_str().unwrap_or("").to_owned(),
                function,
            ));
        }
    }
    for (name, function) in &read {
        assert!(emitted(name), "no function emits {name}");
        assert!(emitted(function), "no function is {function:?}");
    }

    let on_dashboard = |name: &str| shown.iter().any(|(_, n, _)| n == name);
    for needed in [
        "OrdersPlaced",
        "OrdersRejected",
        "CancelsRequested",
        "PlacementErrors",
        "OrdersClosed",
        "FillsApplied",
        "DuplicateDeliveries",
        "OrdersRescheduled",
        "OrdersFlagged",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "Duration",
    ] {
        assert!(on_dashboard(needed), "the dashboard shows {needed}");
    }
    for (method, path) in place_order::ROUTES {
        for stat in ["p50", "p99"] {
            let method = method.to_uppercase();
            assert!(
                shown.iter().any(|(ns, name, dims)| ns == "AWS/ApiGateway"
                    && name == "Latency"
                    && dims.contains(&method)
                    && dims.iter().any(|d| d == path)
                    && dims.last().map(String::as_str) == Some(stat)),
                "the dashboard shows {stat} latency of {method} {path}"
            );
        }
    }
}

#[test]
fn the_orders_routes_require_their_scopes() {
    let template = template();
    let functions = of_type(&template, "AWS::Serverless::Function");
    let events = functions["PlaceOrderFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("events");
    let mut routes = BTreeSet::new();
    for (name, event) in events {
        let properties = &event["Properties"];
        let method = properties["Method"]
            .as_str()
            .expect("method")
            .to_lowercase();
        let path = properties["Path"].as_str().expect("path").to_owned();
        let scope = if method == "get" {
            place_order::READ_SCOPE
        } else {
            place_order::WRITE_SCOPE
        };
        assert_eq!(
            properties["Auth"]["Authorizer"].as_str(),
            Some("OrdersJwt"),
            "{name:?}"
        );
        assert_eq!(
            list(&properties["Auth"]["AuthorizationScopes"]),
            vec![Value::from(scope)],
            "{name:?}"
        );
        routes.insert((method, path));
    }
    let expected: BTreeSet<(String, String)> = place_order::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(routes, expected);
    let webhook =
        &functions["FillWebhookFunction"]["Properties"]["Events"]["Webhook"]["Properties"];
    assert_eq!(webhook["Auth"]["Authorizer"].as_str(), Some("NONE"));
}

/// The signing secret lives in Secrets Manager, is put by an operator, and
/// only the webhook function may read it; no plaintext parameter or
/// variable carries it.
#[test]
fn the_webhook_secret_is_read_from_secrets_manager_only() {
    let template = template();
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("readable");
    assert!(
        !text.contains("WEBHOOK_SECRETS"),
        "no plaintext secrets variable"
    );
    for name in template["Parameters"]
        .as_mapping()
        .expect("parameters")
        .keys()
    {
        let name = name.as_str().expect("name");
        assert!(
            !name.contains("Secret"),
            "parameter {name} would carry the secret"
        );
    }
    let secret = &resources(&template)["WebhookSigningSecret"];
    assert_eq!(secret["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
    for value in ["SecretString", "GenerateSecretString"] {
        assert!(
            secret["Properties"].get(value).is_none(),
            "created empty: the operator puts the value"
        );
    }
    let functions = of_type(&template, "AWS::Serverless::Function");
    let env = &functions["FillWebhookFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        reference(&env["WEBHOOK_SECRET_ID"]),
        Some("WebhookSigningSecret")
    );
    assert!(env.get("WEBHOOK_SECRET_CACHE_SECONDS").is_some());
    let readers: Vec<(String, Value)> = statements(&template)
        .into_iter()
        .filter(|(_, s)| yaml(&s["Action"]).contains("secretsmanager:"))
        .collect();
    assert_eq!(readers.len(), 1, "{readers:?}");
    let (holder, statement) = &readers[0];
    assert_eq!(holder, "FillWebhookFunction");
    assert_eq!(
        statement["Action"].as_str(),
        Some("secretsmanager:GetSecretValue")
    );
    assert_eq!(
        reference(&statement["Resource"]),
        Some("WebhookSigningSecret")
    );
}

/// `--stack <name>` resolves the table and queues from these outputs.
#[test]
fn the_outputs_are_the_ones_the_operator_commands_read() {
    let template = template();
    let outputs = template["Outputs"].as_mapping().expect("outputs");
    for name in [
        local::target::OUTPUT_TRADING_TABLE,
        local::target::OUTPUT_DEAD_LETTER_QUEUE_URL,
        local::target::OUTPUT_BALANCES_API_URL,
        local::target::OUTPUT_FILL_QUEUE_URL,
        "BalancesTableName",
        "OrdersApiUrl",
    ] {
        assert!(outputs.contains_key(name), "output {name}");
    }
}

/// The template cites documents that exist, and their sections.
#[test]
fn the_template_cites_only_documents_that_exist() {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("readable");
    assert!(
        !text.contains("DESIGN.md"),
        "the repository has no DESIGN.md"
    );
    for (position, _) in text.match_indices("docs/") {
        let cited: String = text[position..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || "/._-#".contains(*c))
            .collect();
        let (file, anchor) = cited.split_once('#').unwrap_or((cited.as_str(), ""));
        let file = file.trim_end_matches('.');
        let path = root().join(file);
        assert!(
            path.is_file(),
            "template.yaml cites {file}, which does not exist"
        );
        if !anchor.is_empty() {
            assert!(
                anchors(&path).contains(anchor),
                "template.yaml cites {file}#{anchor}, which has no such section"
            );
        }
    }
}
