//! An `embassy-time` driver on the SysTick timer (1 kHz), for boards without an embassy HAL.
//! With a HAL (embassy-stm32, embassy-nrf, esp-hal…), delete this: the HAL brings its own.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// CPU clock the SysTick counts (the reset clock of an STM32F4: 16 MHz HSI).
pub const CPU_HZ: u32 = 16_000_000;

/// embassy-time's default tick rate is 1 MHz: one SysTick (1 ms) is 1 000 ticks.
const TICKS_PER_MS: u64 = 1_000;

struct SysTickDriver {
    now: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    now: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.now.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow(cs).borrow_mut();
            if queue.schedule_wake(at, waker) {
                // Already due: wake at once (the next tick would be late by up to 1 ms).
                let now = self.now.borrow(cs).get();
                queue.next_expiration(now);
            }
        });
    }
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let now = DRIVER.now.borrow(cs).get() + TICKS_PER_MS;
        DRIVER.now.borrow(cs).set(now);
        DRIVER.queue.borrow(cs).borrow_mut().next_expiration(now);
    });
}

/// Starts the 1 kHz SysTick interrupt.
pub fn start(mut syst: cortex_m::peripheral::SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CPU_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}
