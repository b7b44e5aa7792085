"""The operator as a process: request inbox, batching cycle, posting."""
