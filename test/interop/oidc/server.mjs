// An OpenID provider for devicemail's interoperability tests: panva's
// oidc-provider (a certified OpenID Connect implementation we did not write),
// configured for what a device needs and bound to loopback only.
//
// Flows: device authorization grant (RFC 8628), authorization code with
// client_secret_basic and client_secret_post and loopback redirect URIs
// (RFC 8252 §7.3), refresh tokens rotated on every use with reuse detection,
// token introspection (RFC 7662) and revocation (RFC 7009). Access tokens are
// opaque unless the client asks for the resource urn:devicemail:smtp (RFC 8707),
// in which case they are RS256 JWTs that Dovecot can validate locally.
//
// Environment (every variable optional):
//   INTEROP_OIDC_PORT       listen port on 127.0.0.1            (default 19400)
//   INTEROP_OIDC_STATE      directory for the key, pid and logs (default $TMPDIR/devicemail-interop-oidc)
//   INTEROP_OIDC_JWT_TYP    "typ" header of JWT access tokens   (default RFC 9068 "at+jwt";
//                           Dovecot 2.3 local validation only accepts "JWT")
//   INTEROP_OIDC_SLOW_DOWN  N > 0: OUR shim (oidc-provider never sends slow_down)
//                           advertises interval N and answers slow_down to a device
//                           code polled again within N seconds.
//
// Users: the development login page accepts any login and password; the login
// becomes the subject, so log in as "alice@example.test" to get sub=alice@example.test.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Provider, { errors } from 'oidc-provider';

const env = process.env;
const port = Number(env.INTEROP_OIDC_PORT || 19400);
const stateDir = env.INTEROP_OIDC_STATE || join(env.TMPDIR || tmpdir(), 'devicemail-interop-oidc');
const jwtTyp = env.INTEROP_OIDC_JWT_TYP || '';
const slowDown = Number(env.INTEROP_OIDC_SLOW_DOWN || 0);
const issuer = `http://127.0.0.1:${port}`;

export const SMTP_RESOURCE = 'urn:devicemail:smtp';

// Access tokens of this client live two seconds, so a test can hold an expired one.
const SHORT_CLIENT = 'interop-short';
const accessTTL = (client) => (client?.clientId === SHORT_CLIENT ? 2 : 3600);

mkdirSync(stateDir, { recursive: true });

// One RSA signing key per state directory. The public half is also written as
// PEM for Dovecot's local JWT validation.
const keyFile = join(stateDir, 'signing-key.jwk.json');
if (!existsSync(keyFile)) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-1', alg: 'RS256', use: 'sig' };
  writeFileSync(keyFile, JSON.stringify(jwk), { mode: 0o600 });
}
const signingKey = JSON.parse(readFileSync(keyFile, 'utf8'));
writeFileSync(join(stateDir, 'signing-key.pub.pem'),
  createPublicKey({ key: signingKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }));

// Minimal HTML pages: no fonts or scripts from outside loopback. The test's
// user agent reads the forms by their ids.
const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const doc = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${html(title)}</title></head><body><h1>${html(title)}</h1>${body}</body></html>`;

const deviceFlow = {
  enabled: true,
  async userCodeInputSource(ctx, form, out, err) {
    let note = 'Enter the code shown on your device.';
    if (err) note = `Error: ${html(out?.error || err.name)}`;
    ctx.type = 'html';
    ctx.body = doc('Enter code', `<p id="note">${note}</p>${form}<button form="op.deviceInputForm" type="submit">Next</button>`);
  },
  async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
    ctx.type = 'html';
    ctx.body = doc('Confirm', `<p>${html(client.clientId)} shows <code id="user_code">${html(userCode)}</code></p>${form}`
      + '<button form="op.deviceConfirmForm" type="submit">Allow</button>'
      + '<button form="op.deviceConfirmForm" type="submit" name="abort" value="yes">Cancel</button>');
  },
  async successSource(ctx) {
    ctx.type = 'html';
    ctx.body = doc('Signed in', '<p id="signed-in">You may close this page.</p>');
  },
};

const native = (id, secret, method) => ({
  client_id: id,
  client_secret: secret,
  token_endpoint_auth_method: method,
  application_type: 'native', // any loopback port is accepted for the redirect URI
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/callback'],
});
const publicDevice = (id) => ({
  client_id: id,
  token_endpoint_auth_method: 'none',
  grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
  response_types: [],
  redirect_uris: [],
});

// Test credentials, not secrets: they only exist on a loopback test server.
const clients = [
  publicDevice('interop-device'),
  publicDevice(SHORT_CLIENT),
  native('interop-basic', 'interop-basic-secret-0001', 'client_secret_basic'),
  native('interop-post', 'interop-post-secret-0002', 'client_secret_post'),
  { // the resource server: only calls introspection
    client_id: 'dovecot',
    client_secret: 'interop-dovecot-secret-0003',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
];

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: ['interop-cookie-key-a', 'interop-cookie-key-b'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'mail'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      claims: async () => ({ sub, email: sub, email_verified: true, name: sub.split('@')[0] }),
    };
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow,
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      async getResourceServerInfo(ctx, resource, client) {
        if (resource !== SMTP_RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: 'mail',
          audience: SMTP_RESOURCE,
          accessTokenTTL: accessTTL(client),
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // Put the scope's claims (email) in the ID token too, not only at userinfo,
  // so that a device learns who signed in without another request.
  conformIdTokenClaims: false,
  rotateRefreshToken: true, // every refresh returns a new refresh token; reuse revokes the grant
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  ttl: {
    AccessToken: (ctx, token, client) => accessTTL(client),
    AuthorizationCode: 60,
    DeviceCode: 600,
    Grant: 14 * 24 * 3600,
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: 14 * 24 * 3600,
    Session: 24 * 3600,
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = doc('Error', `<pre id="error">${html(JSON.stringify(out))}</pre>`);
  },
  formats: {
    customizers: {
      jwt: jwtTyp ? async (ctx, token, jwt) => { jwt.header = { ...jwt.header, typ: jwtTyp }; } : undefined,
    },
  },
});

if (slowDown > 0) {
  const polled = new Map();
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === '/token') {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const raw = Buffer.concat(chunks);
      ctx.req.body = raw; // oidc-provider parses ctx.req.body when the stream was consumed
      const form = new URLSearchParams(raw.toString('utf8'));
      const code = form.get('device_code');
      if (code) {
        const now = Date.now();
        const last = polled.get(code);
        polled.set(code, now);
        if (last !== undefined && now - last < slowDown * 1000) {
          ctx.status = 400;
          ctx.set('Cache-Control', 'no-store');
          ctx.body = { error: 'slow_down', error_description: 'polling too fast (devicemail interop shim)' };
          return;
        }
      }
    }
    await next();
    if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200 && ctx.body?.device_code) {
      ctx.body = { ...ctx.body, interval: slowDown };
    }
  });
}

provider.on('server_error', (ctx, err) => console.error('server_error:', err));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready at ${issuer}, state in ${stateDir}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
