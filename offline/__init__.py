"""Run the real program without the Pulumi CLI: stack config, Pulumi's runtime mocks, the policy analyzer."""
