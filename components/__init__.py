"""Pipeline steps: plain typed functions (``steps``) and thin ``@dsl.component`` wrappers."""
