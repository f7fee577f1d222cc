"""The emulated AWS side of the local stack: the template translated as CloudFormation would, resources
provisioned in moto, IAM enforced per function, and a Lambda-like runtime with a process per worker."""
