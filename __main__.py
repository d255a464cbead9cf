"""netopt: declare the container network, its workloads and gateway from the stack's `netopt:*` config."""

import pulumi

from components.observe.observed import CONFIG_NAMESPACE, observed_section, read_observation
from components.resources.app_network import AppNetwork
from components.resources.pulumi_config import spec_from_pulumi_config
from components.spec.validation import SpecError

try:
    spec = spec_from_pulumi_config()
    observation = pulumi.Config(CONFIG_NAMESPACE).get("file")
    observed = observed_section(spec, *read_observation(observation)) if observation else None
except SpecError as error:
    # RunError ends the program cleanly with the report and no traceback; nothing has been registered yet.
    raise pulumi.RunError(error.report()) from None

app = AppNetwork(spec.network.name, spec, observed=observed)
pulumi.export("endpoint", app.endpoint)
pulumi.export("scores", app.report["scores"])
pulumi.export("capacity", app.report["capacity"])
pulumi.export("report", app.report)
