"""What the commands do, by composing the model and the adapters: send an apology, a watch pass, the daemon, a campaign run."""
