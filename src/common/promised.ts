/**
 * What a call answers — a value, a promise, or a throw — as a promise, for callers that
 * answer later anyway. The call is passed with its receiver and arguments, not wrapped in
 * a closure: no allocation but the promise on the paths that use it per request.
 */
export function promised<A, B, T>(call: (this: unknown, a: A, b: B) => T | Promise<T>, self: unknown, a: A, b: B): Promise<T> {
  try {
    const answer = call.call(self, a, b);
    return answer instanceof Promise ? answer : Promise.resolve(answer);
  } catch (error) {
    return Promise.reject(error);
  }
}
