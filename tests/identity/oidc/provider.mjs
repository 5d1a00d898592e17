// An OpenID Connect provider on loopback for KAI's SSO tests; never for production.
//
// Usage: node provider.mjs '<config JSON>'  (or the JSON in OIDC_PROVIDER_CONFIG)
//   {"port": 0,
//    "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": ["..."],
//                 "token_endpoint_auth_method": "client_secret_basic"}],
//    "users": [{"sub": "...", "email": "...", "email_verified": true, "name": "..."}]}
// OIDC_PROVIDER_PORT overrides "port"; 0 picks a free port.
//
// When it listens it prints one JSON line to stdout, {"issuer": ..., "port": ...}, and nothing
// else there: logs go to stderr. It exits when its stdin closes (the parent is gone) or on
// SIGTERM/SIGINT, so a crashed test run leaves no provider behind.
//
// Login takes no browser: the interaction page /interaction/<uid> accepts `login=<sub>` as a
// query parameter or a POSTed form field. A known sub logs in, an unknown one answers the
// client with access_denied. Consent is then granted by itself for every requested scope and
// claim.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

// oidc-provider prints notices with console.info; stdout is kept for the ready line alone.
console.log = console.error;
console.info = console.error;

const INTERACTION_PATH = /^\/interaction\/([^/]+)$/;
const MAX_FORM_BYTES = 16 * 1024;

function fail(message) {
  console.error(`oidc test provider: ${message}`);
  process.exit(2);
}

function readConfig() {
  const raw = process.argv[2] ?? process.env.OIDC_PROVIDER_CONFIG;
  if (!raw) fail('no configuration: pass a JSON argument or set OIDC_PROVIDER_CONFIG');
  let config;
  try {
    config = JSON.parse(raw);
  } catch (error) {
    fail(`configuration is not JSON: ${error.message}`);
  }
  const { clients = [], users = [] } = config;
  if (!Array.isArray(clients) || clients.length === 0) fail('configuration needs "clients"');
  if (!Array.isArray(users)) fail('"users" must be a list');
  for (const user of users) {
    if (typeof user.sub !== 'string' || !user.sub) fail('every user needs a "sub"');
  }
  const port = Number(process.env.OIDC_PROVIDER_PORT ?? config.port ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${port}`);
  return { clients, users, port };
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

function accountFinder(users) {
  const bySub = new Map(users.map((user) => [user.sub, user]));
  return async function findAccount(_ctx, sub) {
    const user = bySub.get(sub);
    if (!user) return undefined;
    const claims = {
      sub: user.sub,
      email: user.email,
      email_verified: user.email_verified ?? true,
      name: user.name,
    };
    return { accountId: user.sub, claims: async () => claims };
  };
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > MAX_FORM_BYTES) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function loginPage(uid) {
  // A form a person could use too, though the tests post to it directly.
  return `<!doctype html><title>Sign in</title>
<form method="post" action="/interaction/${uid}">
<label>Login (sub) <input name="login" autofocus></label> <button>Sign in</button>
</form>\n`;
}

async function grantEverythingRequested(provider, interaction) {
  const { prompt: { details }, params, session, grantId } = interaction;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const savedGrantId = await grant.save();
  return { consent: grantId ? {} : { grantId: savedGrantId } };
}

function interactions(provider, users) {
  const known = new Set(users.map((user) => user.sub));
  return async function interact(ctx, next) {
    const match = INTERACTION_PATH.exec(ctx.path);
    if (!match) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'POST') {
      ctx.status = 405;
      return undefined;
    }
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== match[1]) {
      ctx.status = 400;
      ctx.body = 'interaction does not match the browser session\n';
      return undefined;
    }

    let result;
    if (interaction.prompt.name === 'login') {
      const login = ctx.method === 'POST'
        ? (await readForm(ctx.req)).get('login')
        : ctx.query.login;
      if (!login) {
        ctx.type = 'html';
        ctx.body = loginPage(interaction.uid);
        return undefined;
      }
      result = known.has(login)
        ? { login: { accountId: login } }
        : { error: 'access_denied', error_description: `unknown login ${JSON.stringify(login)}` };
    } else if (interaction.prompt.name === 'consent') {
      result = await grantEverythingRequested(provider, interaction);
    } else {
      ctx.status = 400;
      ctx.body = `unsupported prompt ${interaction.prompt.name}\n`;
      return undefined;
    }

    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: true,
    });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return undefined;
  };
}

function configuration({ clients, users }) {
  return {
    clients: clients.map((client) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      ...client,
    })),
    jwks: { keys: [signingKey()] },
    findAccount: accountFinder(users),
    scopes: ['openid', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    responseTypes: ['code'],
    // Relying parties read the user from the ID token, not from the userinfo endpoint.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Numbers rather than the defaults, which print a notice each.
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 600,
      Grant: 600,
    },
    async renderError(ctx, out) {
      ctx.type = 'text/plain';
      ctx.body = `${out.error}: ${out.error_description ?? ''}\n`;
    },
  };
}

async function startProvider(server, config) {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration(config));
  // oidc-provider checks a client's metadata when the client is first used; now, a mistake in
  // the configuration fails the start rather than a login later.
  for (const { client_id: clientId } of config.clients) {
    try {
      await provider.Client.find(clientId);
    } catch (error) {
      fail(`client ${JSON.stringify(clientId)}: ${error.error_description ?? error.message}`);
    }
  }
  provider.use(interactions(provider, config.users));
  return { issuer, port, handler: provider.callback() };
}

function main() {
  const config = readConfig();
  let handle = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handle(req, res));

  const stop = () => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();

  server.on('error', (error) => fail(`cannot listen: ${error.message}`));
  server.listen(config.port, '127.0.0.1', () => {
    startProvider(server, config).then(
      ({ issuer, port, handler }) => {
        handle = handler;
        process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
      },
      (error) => fail(`cannot start: ${error.message}`),
    );
  });
}

main();
