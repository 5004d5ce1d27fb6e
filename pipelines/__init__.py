"""The KFP training DAG, its compile/submit helpers and the Kafka listener that launches runs."""
