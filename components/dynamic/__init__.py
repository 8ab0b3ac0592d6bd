"""Python dynamic resources: the parts of `pulumi up` this project implements itself."""
