"""The jobs table as template.yaml declares it, for unit tests against moto in process."""

from __future__ import annotations

from typing import Any

from loradrop_local.aws.cloudformation import load_template


def create_jobs_table(client: Any, name: str = "jobs") -> None:
    table = load_template()["Resources"]["JobsTable"]["Properties"]
    client.create_table(
        TableName=name,
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
        GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
        BillingMode="PAY_PER_REQUEST",
    )
