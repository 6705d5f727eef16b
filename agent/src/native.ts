/**
 * How better-sqlite3 finds its native addon. In development and npm installs it finds its own build; the single
 * executable embeds the addon as an asset, loads it with process.dlopen and hands it over here (sea-main.ts) before
 * anything opens a database.
 */
let binding: object | undefined;

export function setSqliteBinding(addon: object): void {
  binding = addon;
}

export function sqliteBindingOption(): { nativeBinding?: object } {
  return binding ? { nativeBinding: binding } : {};
}
