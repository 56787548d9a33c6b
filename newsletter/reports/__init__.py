"""Reports that read across the domains: one send's figures (email, WeChat, subject tests,
relays, archive views), trends and exports. Above every domain, below the web and the
command line; no domain imports it."""
