// A real OpenID Provider for the single sign-on tests: panva's oidc-provider, started
// by the test with its configuration in the environment. Its development login
// form accepts any account id listed in NL_ACCOUNTS (the password is ignored).
//
//   PORT            where to listen (127.0.0.1)
//   NL_CLIENT       JSON: client_id, client_secret, redirect_uri, post_logout_uri,
//                   backchannel_uri
//   NL_ACCOUNTS     JSON: {account id: {email, name, roles}}
import Provider from "oidc-provider";

// `make test-future` moves the product's clock (NEWSLETTER_CLOCK_OFFSET); the provider is
// another party whose clock must agree with it, so it moves too.
const clockOffsetMs = (() => {
  const raw = (process.env.NEWSLETTER_CLOCK_OFFSET || "").trim();
  if (!raw) return 0;
  return raw.endsWith("d") ? parseFloat(raw) * 86400000 : parseFloat(raw) * 1000;
})();
if (clockOffsetMs) {
  const RealDate = Date;
  const realNow = RealDate.now;
  globalThis.Date = class extends RealDate {
    constructor(...args) { super(...(args.length ? args : [realNow() + clockOffsetMs])); }
    static now() { return realNow() + clockOffsetMs; }
  };
}

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const client = JSON.parse(process.env.NL_CLIENT);
const accounts = JSON.parse(process.env.NL_ACCOUNTS);

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uris: [client.redirect_uri],
      post_logout_redirect_uris: [client.post_logout_uri],
      backchannel_logout_uri: client.backchannel_uri,
      backchannel_logout_session_required: false,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    roles: ["roles"],
  },
  // The role claim goes into the ID token itself, as company providers are set up to do.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  pkce: { required: () => true },
  // The console under test listens on the loopback address, which the provider's
  // SSRF guard refuses for its outgoing calls (the back-channel logout): the test
  // provider lets it through.
  fetch(url, options) {
    const { dispatcher, ...rest } = options;
    return fetch(url, rest);
  },
  cookies: { keys: ["only-for-tests"] },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email_verified: true, ...account };
      },
    };
  },
});
provider.proxy = false;
provider.on("backchannel.error", (ctx, err) => {
  process.stderr.write(`backchannel logout failed: ${err.message}\n`);
});
provider.on("backchannel.success", () => process.stderr.write("backchannel logout sent\n"));

const server = provider.listen(port, "127.0.0.1", () => {
  process.stdout.write(`ready ${issuer}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
