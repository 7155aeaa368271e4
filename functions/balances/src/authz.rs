//! Who may call what: each operation is authorised by its caller.
//!
//! API Gateway's IAM authorizer has verified the caller's SigV4 signature
//! and hands the function the caller's identity
//! (`requestContext.authorizer.iam.userArn`, for a Lambda function
//! `arn:aws:sts::<account>:assumed-role/<RoleName>/<session>`). The role
//! name is checked against two lists read at cold start:
//!
//! - trading roles (the functions that drive orders) may reserve, settle and
//!   release, on `POST /accounts/{account}/operations`;
//! - admin roles (operators) may deposit (create money), on
//!   `POST /admin/accounts/{account}/operations` only;
//! - both may read (`GET` routes).
//!
//! A route refuses what belongs to the other one, so a trading role can
//! never create money, whatever it sends where. A request without an
//! identity, or whose identity is not an assumed role of the API's own
//! account, is refused.

use std::collections::BTreeSet;

use domain::Operation;
use lambda_http::request::RequestContext;

/// Longest IAM role name.
pub const MAX_ROLE_NAME_LEN: usize = 64;

/// What a route lets its caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `POST /accounts/{account}/operations`: reserve, settle, release.
    Trading,
    /// `POST /admin/accounts/{account}/operations`: deposit.
    Admin,
    /// `GET` routes.
    Read,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Trading => "the trading route",
            Access::Admin => "the admin route",
            Access::Read => "reading",
        })
    }
}

/// The route an operation belongs to. Exhaustive on purpose: a new kind of
/// operation (a withdrawal, say) cannot be added without deciding here who
/// may run it.
pub fn route_of(operation: &Operation) -> Access {
    match operation {
        // Creates value out of nothing: only an operator.
        Operation::Deposit { .. } => Access::Admin,
        Operation::Reserve { .. } | Operation::Release { .. } | Operation::Settle { .. } => {
            Access::Trading
        }
    }
}

/// Why a request was refused (`403`). The text is safe to return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("the request carries no IAM caller identity")]
    NoIdentity,
    #[error("the caller is not an IAM role of this account")]
    NotARole,
    #[error("role {role} may not use {access}")]
    Role { role: String, access: Access },
    #[error("a {kind} is not accepted on {access}; it belongs to {belongs}")]
    WrongRoute {
        kind: &'static str,
        access: Access,
        belongs: Access,
    },
}

/// A configured list is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolesError {
    #[error("{variable}: {name:?} is not an IAM role name (1 to {MAX_ROLE_NAME_LEN} of A-Z a-z 0-9 + = , . @ _ -)")]
    BadName {
        variable: &'static str,
        name: String,
    },
    #[error("{0} lists no role")]
    Empty(&'static str),
}

/// The roles allowed on each route (by IAM role name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    trading: BTreeSet<String>,
    admin: BTreeSet<String>,
}

fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROLE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// A comma-separated list of role names; blanks around names are ignored.
fn parse_list(variable: &'static str, text: &str) -> Result<BTreeSet<String>, RolesError> {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            if valid_role_name(name) {
                Ok(name.to_owned())
            } else {
                Err(RolesError::BadName {
                    variable,
                    name: name.to_owned(),
                })
            }
        })
        .collect()
}

impl Roles {
    /// From the two comma-separated lists (`BALANCES_TRADING_ROLES`,
    /// `BALANCES_ADMIN_ROLES`). The trading list may not be empty (the
    /// platform could not trade); the admin list may (nobody may deposit).
    pub fn parse(trading: &str, admin: &str) -> Result<Roles, RolesError> {
        let trading_set = parse_list("BALANCES_TRADING_ROLES", trading)?;
        if trading_set.is_empty() {
            return Err(RolesError::Empty("BALANCES_TRADING_ROLES"));
        }
        Ok(Roles {
            trading: trading_set,
            admin: parse_list("BALANCES_ADMIN_ROLES", admin)?,
        })
    }

    /// Lets `caller` in on a route giving `access`, or says why not.
    /// Returns the caller's role name (for the logs).
    pub fn authorize(&self, caller: &Caller, access: Access) -> Result<String, Forbidden> {
        let role = caller.role()?;
        let allowed = match access {
            Access::Trading => self.trading.contains(role),
            Access::Admin => self.admin.contains(role),
            Access::Read => self.trading.contains(role) || self.admin.contains(role),
        };
        if allowed {
            Ok(role.to_owned())
        } else {
            Err(Forbidden::Role {
                role: role.to_owned(),
                access,
            })
        }
    }
}

/// Refuses an operation sent to the route it does not belong to.
pub fn check_route(operation: &Operation, access: Access) -> Result<(), Forbidden> {
    let belongs = route_of(operation);
    if belongs == access {
        Ok(())
    } else {
        Err(Forbidden::WrongRoute {
            kind: operation.kind(),
            access,
            belongs,
        })
    }
}

/// The caller as API Gateway's IAM authorizer describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// `requestContext.authorizer.iam.userArn`.
    pub user_arn: Option<String>,
    /// `requestContext.accountId`: the account that owns the API.
    pub api_account_id: Option<String>,
}

impl Caller {
    /// Reads the identity out of the request context `lambda_http` attaches
    /// to each request (none on a request that did not come through API
    /// Gateway or its local emulation).
    pub fn from_context(context: Option<&RequestContext>) -> Caller {
        match context {
            Some(RequestContext::ApiGatewayV2(context)) => Caller {
                user_arn: context
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.iam.as_ref())
                    .and_then(|iam| iam.user_arn.clone()),
                api_account_id: context.account_id.clone(),
            },
            _ => Caller::default(),
        }
    }

    /// The role name of an assumed-role ARN
    /// (`arn:<partition>:sts::<account>:assumed-role/<RoleName>/<session>`),
    /// of the API's own account when that is known.
    fn role(&self) -> Result<&str, Forbidden> {
        let arn = self.user_arn.as_deref().ok_or(Forbidden::NoIdentity)?;
        let mut fields = arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some("sts"), Some(""), Some(account), Some(resource)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(Forbidden::NotARole);
        };
        if self
            .api_account_id
            .as_deref()
            .is_some_and(|owner| owner != account)
        {
            return Err(Forbidden::NotARole);
        }
        let mut parts = resource.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("assumed-role"), Some(role), Some(session))
                if valid_role_name(role) && !session.is_empty() =>
            {
                Ok(role)
            }
            _ => Err(Forbidden::NotARole),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Amount, Asset};

    const ACCOUNT: &str = "123456789012";

    fn caller(arn: &str) -> Caller {
        Caller {
            user_arn: Some(arn.to_owned()),
            api_account_id: Some(ACCOUNT.to_owned()),
        }
    }

    fn assumed(role: &str) -> Caller {
        caller(&format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/{role}/session-1"
        ))
    }

    fn roles() -> Roles {
        Roles::parse(
            "PlaceOrderRole, FillProcessorRole,ReconcilerRole",
            "OperatorRole",
        )
        .expect("valid")
    }

    #[test]
    fn each_list_opens_its_own_route_and_both_may_read() {
        let roles = roles();
        for role in ["PlaceOrderRole", "FillProcessorRole", "ReconcilerRole"] {
            assert_eq!(
                roles.authorize(&assumed(role), Access::Trading),
                Ok(role.to_owned())
            );
            assert!(roles.authorize(&assumed(role), Access::Read).is_ok());
            assert_eq!(
                roles.authorize(&assumed(role), Access::Admin),
                Err(Forbidden::Role {
                    role: role.into(),
                    access: Access::Admin
                })
            );
        }
        let operator = assumed("OperatorRole");
        assert!(roles.authorize(&operator, Access::Admin).is_ok());
        assert!(roles.authorize(&operator, Access::Read).is_ok());
        assert!(roles.authorize(&operator, Access::Trading).is_err());
        assert!(roles
            .authorize(&assumed("SomeOtherRole"), Access::Read)
            .is_err());
    }

    #[test]
    fn only_assumed_roles_of_the_api_account_are_callers() {
        let roles = roles();
        for arn in [
            "arn:aws:iam::123456789012:user/PlaceOrderRole",
            "arn:aws:iam::123456789012:role/PlaceOrderRole",
            "arn:aws:sts::123456789012:assumed-role/PlaceOrderRole",
            "arn:aws:sts::123456789012:assumed-role/PlaceOrderRole/",
            "arn:aws:sts::999999999999:assumed-role/PlaceOrderRole/s",
            "arn:aws:sts:us-east-1:123456789012:assumed-role/PlaceOrderRole/s",
            "PlaceOrderRole",
            "",
        ] {
            assert_eq!(
                roles.authorize(&caller(arn), Access::Read),
                Err(Forbidden::NotARole),
                "{arn}"
            );
        }
        assert_eq!(
            roles.authorize(&Caller::default(), Access::Read),
            Err(Forbidden::NoIdentity)
        );
        // Other partitions, and no API account to compare with.
        let china = Caller {
            user_arn: Some("arn:aws-cn:sts::1:assumed-role/ReconcilerRole/x".into()),
            api_account_id: None,
        };
        assert!(roles.authorize(&china, Access::Trading).is_ok());
    }

    #[test]
    fn each_operation_belongs_to_one_route() {
        let cash = |amount| Amount::new(amount).expect("amount");
        let deposit = Operation::Deposit {
            asset: Asset::Cash,
            amount: cash(1),
        };
        let reserve = Operation::Reserve {
            asset: Asset::Cash,
            amount: cash(1),
        };
        assert_eq!(check_route(&deposit, Access::Admin), Ok(()));
        assert_eq!(check_route(&reserve, Access::Trading), Ok(()));
        assert_eq!(
            check_route(&deposit, Access::Trading),
            Err(Forbidden::WrongRoute {
                kind: "deposit",
                access: Access::Trading,
                belongs: Access::Admin
            })
        );
        assert!(check_route(&reserve, Access::Admin).is_err());
    }

    #[test]
    fn role_lists_are_validated() {
        assert_eq!(
            Roles::parse(" , ", "OperatorRole"),
            Err(RolesError::Empty("BALANCES_TRADING_ROLES"))
        );
        assert!(matches!(
            Roles::parse("Good,Bad Role", ""),
            Err(RolesError::BadName {
                variable: "BALANCES_TRADING_ROLES",
                ..
            })
        ));
        assert!(matches!(
            Roles::parse("Good", &"x".repeat(65)),
            Err(RolesError::BadName {
                variable: "BALANCES_ADMIN_ROLES",
                ..
            })
        ));
        let roles = Roles::parse("A", "").expect("no admin is allowed");
        assert!(roles.authorize(&assumed("A"), Access::Admin).is_err());
    }
}
