/**
 * The JWS `typ` of a decision receipt: distinct from a service token's (`at+jwt`), so a receipt can
 * never be presented as a credential nor a token as a receipt. Shared by the signer and the SDK's
 * verifier (this module imports nothing, so the SDK bundles nothing of the server with it).
 */
export const RECEIPT_TYPE = "arbiter-receipt+jwt";
