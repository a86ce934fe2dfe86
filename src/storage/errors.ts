/** Typed storage errors, so callers branch on classes rather than driver error text. */

/** `createAccount` with an email that another account already has. */
export class DuplicateEmailError extends Error {
  readonly email: string;
  constructor(email: string) {
    super(`An account with email ${email} already exists.`);
    this.name = 'DuplicateEmailError';
    this.email = email;
  }
}

/** An email that does not look like `local@domain.tld`. */
export class InvalidEmailError extends Error {
  constructor(email: string) {
    super(`'${email}' is not a valid email address.`);
    this.name = 'InvalidEmailError';
  }
}

/** Whether a driver error is a unique-constraint violation (SQLite or PostgreSQL 23505). */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** An operation on an account id that does not exist. */
export class AccountNotFoundError extends Error {
  readonly accountId: string;
  constructor(accountId: string) {
    super(`No account with id ${accountId}.`);
    this.name = 'AccountNotFoundError';
    this.accountId = accountId;
  }
}

/**
 * A value a repository refuses to store (a ledger amount or reason, a key setting, a billing
 * mode). `field` names the input field; the message says what is allowed and never quotes
 * the rejected value.
 */
export class InvalidFieldError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'InvalidFieldError';
    this.field = field;
  }
}
