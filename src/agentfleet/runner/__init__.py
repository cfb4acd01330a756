"""What runs for one run, in a Pod or a local process: `agentfleet runner --spec --result`."""
