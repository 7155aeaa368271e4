//! `template.yaml` is valid CloudFormation and grants only what each function needs.

use std::process::Command;

use serde_yaml::Value;

fn template() -> Value {
    let path = local_stack::workspace_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml readable");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

#[test]
fn cfn_lint_passes() {
    local_stack::ensure_installed().expect("pinned tools installed");
    let output = Command::new(local_stack::python_tool("cfn-lint"))
        .arg(local_stack::workspace_root().join("template.yaml"))
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
/// delete from the ledger (order functions delete only the trading
/// table's transient wait markers).
#[test]
fn function_policies_are_least_privilege() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("resources");
    let forbidden_actions = [
        "dynamodb:Scan",
        "dynamodb:BatchWriteItem",
        "dynamodb:*",
        "sqs:*",
    ];
    let mut functions = 0;
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        functions += 1;
        let policies = resource["Properties"]["Policies"]
            .as_sequence()
            .expect("every function lists its policies");
        for policy in policies {
            let statements = policy["Statement"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{name:?}: inline statements only, got {policy:?}"));
            for statement in statements {
                let rendered = serde_yaml::to_string(&statement["Resource"]).expect("yaml");
                assert!(
                    !rendered.contains("'*'") && !rendered.trim().eq("'*'"),
                    "{name:?}: wildcard resource {rendered}"
                );
                assert!(
                    !rendered.contains(":*"),
                    "{name:?}: wildcard in resource {rendered}"
                );
                let actions = serde_yaml::to_string(&statement["Action"]).expect("yaml");
                for action in forbidden_actions {
                    assert!(!actions.contains(action), "{name:?} may not {action}");
                }
                if rendered.contains("BalancesTable") {
                    assert!(
                        !actions.contains("dynamodb:DeleteItem"),
                        "{name:?} may not delete from the ledger"
                    );
                }
            }
        }
    }
    assert_eq!(
        functions, 5,
        "the five functions of the design are declared"
    );
}
