"""The local environment: run the deployed pipelines' Lambda handlers on this machine.

`wiring` reads what Terraform deployed (functions, event source mappings, SNS subscriptions,
schedules) from its state; `sandbox` runs a handler from its packaged zip in an isolated warm
worker process; `router` delivers events from moto's queues, topics, streams and schedules to
those workers the way the Lambda service does. `moto_provider` writes the provider override that
points a Terraform run at moto (the demo's apply and the Terraform apply test share it).
"""
