//! A short scripted walk through the Balances service: deposits, a
//! reservation, its replay, a reused key, an insufficient-funds refusal, a
//! settled fill and the release of the rest. Every step is checked; the demo
//! fails (non-zero exit) if any check does.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use app::{Balances, BalancesCallError};
use aws_adapters::balances_http::{HttpBalances, DEFAULT_TIMEOUT};
use domain::money::format_units;
use domain::{
    AccountId, Amount, Asset, Balance, Catalog, IdempotencyKey, Operation, OperationRecord,
    Outcome, Price, Quantity, Side,
};

use crate::Platform;

struct Demo {
    client: HttpBalances,
    catalog: Catalog,
    failed_checks: Vec<String>,
}

impl Demo {
    fn check(&mut self, what: &str, ok: bool) {
        println!("   {} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.failed_checks.push(what.to_owned());
        }
    }

    async fn call(
        &self,
        account: &AccountId,
        key: &str,
        operation: &Operation,
    ) -> anyhow::Result<Result<OperationRecord, BalancesCallError>> {
        let key = IdempotencyKey::parse(key)?;
        let result = self.client.execute(account, &key, operation).await;
        let answer = match &result {
            Ok(record) => match &record.outcome {
                Outcome::Succeeded => "succeeded".to_owned(),
                Outcome::Failed(failure) => format!("refused: {failure}"),
            },
            Err(error) => format!("error: {error}"),
        };
        println!(
            "   {} {} [key {key}] -> {answer}",
            account,
            describe(operation)
        );
        Ok(result)
    }

    async fn show_balances(&self, account: &AccountId) -> anyhow::Result<BTreeMap<Asset, Balance>> {
        let balances = self
            .client
            .balances(account)
            .await
            .context("reading balances")?;
        for (asset, balance) in &balances {
            println!(
                "   {account} {asset:>5}: available {:>10}  reserved {:>10}",
                format_units(balance.available, asset.scale()),
                format_units(balance.reserved, asset.scale())
            );
        }
        Ok(balances)
    }
}

fn describe(operation: &Operation) -> String {
    match operation {
        Operation::Deposit { asset, amount }
        | Operation::Reserve { asset, amount }
        | Operation::Release { asset, amount } => {
            format!(
                "{} {} {asset}",
                operation.kind(),
                amount.format(asset.scale())
            )
        }
        Operation::Settle {
            symbol,
            side,
            quantity,
            price,
        } => {
            format!("settle {} {quantity} {symbol} @ {price}", side.as_str())
        }
    }
}

pub async fn run(platform: &Platform) -> anyhow::Result<()> {
    let catalog = Catalog::us_equities();
    let client = HttpBalances::new(&platform.balances_url, catalog.clone(), DEFAULT_TIMEOUT)?;
    let mut demo = Demo {
        client,
        catalog,
        failed_checks: Vec::new(),
    };
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let alice = AccountId::parse(&format!("alice-{run_id}"))?;
    let bob = AccountId::parse(&format!("bob-{run_id}"))?;
    let aapl = demo.catalog.asset("AAPL")?;
    let cash = |text: &str| Amount::parse(text, 2);
    let symbol = demo.catalog.symbol("AAPL")?;

    println!(
        "Balances service at {} (table {})\n",
        platform.balances_url,
        platform.resources.table("BalancesTable")
    );

    println!("1. Deposits open the accounts");
    demo.call(
        &alice,
        "deposit-1",
        &Operation::Deposit {
            asset: Asset::Cash,
            amount: cash("10000.00")?,
        },
    )
    .await??;
    demo.call(
        &bob,
        "deposit-1",
        &Operation::Deposit {
            asset: aapl.clone(),
            amount: Amount::new(50)?,
        },
    )
    .await??;

    println!("\n2. Alice reserves cash for a buy order of 10 AAPL (limit 200.00)");
    let reserve = Operation::Reserve {
        asset: Asset::Cash,
        amount: cash("2000.00")?,
    };
    let first = demo.call(&alice, "order-1:reserve", &reserve).await??;

    println!("\n3. The same request again (a client retry after a timeout)");
    let replay = demo.call(&alice, "order-1:reserve", &reserve).await??;
    demo.check("the replay answers the very same record", replay == first);
    let balances = demo.show_balances(&alice).await?;
    demo.check(
        "and moved nothing twice",
        balances.get(&Asset::Cash)
            == Some(&Balance {
                available: 800_000,
                reserved: 200_000,
            }),
    );

    println!("\n4. The same key for a different request");
    let reused = demo
        .call(
            &alice,
            "order-1:reserve",
            &Operation::Reserve {
                asset: Asset::Cash,
                amount: cash("2500.00")?,
            },
        )
        .await?;
    demo.check(
        "is refused as a reused key",
        reused == Err(BalancesCallError::KeyReused),
    );

    println!("\n5. A reservation beyond what Alice has");
    let too_big = Operation::Reserve {
        asset: Asset::Cash,
        amount: cash("9000.00")?,
    };
    let refused = demo.call(&alice, "order-2:reserve", &too_big).await??;
    demo.check(
        "is refused for insufficient funds",
        matches!(refused.outcome, Outcome::Failed(_)),
    );
    let refused_again = demo.call(&alice, "order-2:reserve", &too_big).await??;
    demo.check(
        "and the refusal is stored: its replay answers the same",
        refused_again == refused,
    );

    println!(
        "\n6. The exchange fills order 1: 10 AAPL at 187.25; the unused reservation is released"
    );
    let fill = Operation::Settle {
        symbol: symbol.clone(),
        side: Side::Buy,
        quantity: Quantity::new(10)?,
        price: Price::parse("187.25")?,
    };
    demo.call(&alice, "order-1:fill:exec-1", &fill).await??;
    demo.call(&alice, "order-1:fill:exec-1", &fill).await??; // a duplicate fill delivery
    demo.call(
        &alice,
        "order-1:release",
        &Operation::Release {
            asset: Asset::Cash,
            amount: cash("127.50")?,
        },
    )
    .await??;
    let balances = demo.show_balances(&alice).await?;
    demo.check(
        "cash is 10,000.00 - 1,872.50 with nothing reserved; 10 AAPL held",
        balances.get(&Asset::Cash)
            == Some(&Balance {
                available: 812_750,
                reserved: 0,
            })
            && balances.get(&aapl)
                == Some(&Balance {
                    available: 10,
                    reserved: 0,
                }),
    );

    println!("\n7. Bob sells 20 of his 50 AAPL at 190.00");
    demo.call(
        &bob,
        "order-3:reserve",
        &Operation::Reserve {
            asset: aapl.clone(),
            amount: Amount::new(20)?,
        },
    )
    .await??;
    let sell = Operation::Settle {
        symbol,
        side: Side::Sell,
        quantity: Quantity::new(20)?,
        price: Price::parse("190.00")?,
    };
    demo.call(&bob, "order-3:fill:exec-2", &sell).await??;
    let balances = demo.show_balances(&bob).await?;
    demo.check(
        "Bob holds 30 AAPL and 3,800.00 cash",
        balances.get(&aapl)
            == Some(&Balance {
                available: 30,
                reserved: 0,
            })
            && balances.get(&Asset::Cash)
                == Some(&Balance {
                    available: 380_000,
                    reserved: 0,
                }),
    );

    println!("\n8. Anyone can ask what happened to a key");
    let looked_up = demo
        .client
        .lookup(&alice, &IdempotencyKey::parse("order-1:reserve")?)
        .await?;
    demo.check(
        "lookup of order-1:reserve finds the stored record",
        looked_up.as_ref() == Some(&first),
    );

    if demo.failed_checks.is_empty() {
        println!("\nAll checks passed.");
        Ok(())
    } else {
        bail!(
            "{} check(s) failed: {:?}",
            demo.failed_checks.len(),
            demo.failed_checks
        )
    }
}
